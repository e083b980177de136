//! `console-keys USER FINGERPRINT`: sshd's `AuthorizedKeysCommand` for the
//! console account. sshd runs it as root (the key store is root's alone)
//! with the user name it is authenticating and the fingerprint it computed
//! itself from the key the client offered; both are parsed into types
//! before anything is read. It writes nothing.
//!
//! For a registered key it prints one `authorized_keys` line: the key,
//! `restrict` (no forwarding of any kind, no `~/.ssh/rc`), `pty` (an
//! interactive console needs one), and a forced command naming the key's
//! principal and the console socket; anything else (another user, an
//! unknown key) gets no line, and sshd refuses the key.

use super::door::Forced;
use crate::config::{Config, UserName};
use crate::error::{Error, Result};
use crate::keystore::KeyStore;
use crate::sshkey::{Fingerprint, PublicKey};
use crate::types::Principal;
use std::path::Path;

/// The `authorized_keys` line for `key` of `principal`. Every part is a
/// validated value (a principal, a config path, a parsed key whose
/// comment is of a safe set): none can hold a quote, a backslash or a
/// newline, so none can end the forced command or add an option.
pub fn authorized_line(principal: &Principal, key: &PublicKey, socket: &Path) -> String {
    format!("restrict,pty,command=\"{}\" {}\n", Forced::command(principal, socket), key.line())
}

/// What sshd gets on stdout for `user` offering the key `fp`.
pub fn answer(config: &Config, user: &UserName, fp: &Fingerprint) -> Result<String> {
    if *user != config.console.account {
        return Ok(String::new());
    }
    let found = KeyStore::new(config.state_dir.path()).lookup(fp)?;
    match &found[..] {
        [] => Ok(String::new()),
        [(principal, key)] => Ok(authorized_line(principal, key, config.console.socket.path())),
        // The store lets a key belong to one principal only: two would
        // make the caller ambiguous, so neither is let in.
        _ => Err(Error::failed(format!("the key {fp} is registered to more than one principal; an admin must fix the key store"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_the_key_restricted_with_the_forced_command() {
        let key = PublicKey::parse_line(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop (work)",
        )
        .unwrap();
        let p = Principal::parse("bob/admin@EX.ORG").unwrap();
        let line = authorized_line(&p, &key, Path::new("/run/guest-installer/console.sock"));
        assert_eq!(
            line,
            "restrict,pty,command=\"door bob/admin@EX.ORG /run/guest-installer/console.sock\" ssh-ed25519 \
             AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop (work)\n"
        );
        // One line, and the only quotes are the command's own.
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(line.matches('"').count(), 2);
    }
}
