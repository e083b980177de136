//! How root gets into a system we install, decided once per request and
//! rendered by each install path (the preseed's late_command, a clone's
//! identity seed, Ganeti's OS parameters): the owner's SSH public keys in
//! `/root/.ssh/authorized_keys`, root's password (a crypt hash, or none:
//! the account locked), and whether sshd takes that password for root.
//!
//! Debian's sshd refuses passwords for root (`PermitRootLogin
//! prohibit-password`). An owner with keys gets in with them and Debian's
//! default stays (a password, if given, works on the console). An owner
//! with only a password would be locked out, so then, and only then, our
//! drop-in [`SSHD_DROP_IN`] says `PermitRootLogin yes`. With neither, no
//! one could log in: refused before anything is made.

use crate::caller::Caller;
use crate::keystore::{KeyStore, KeyStoreError};
use crate::secret::{CryptHash, RootPassword};
use crate::sshkey::PublicKey;
use crate::types::Rule;
use serde_json::{json, Value};
use std::io::Read;

/// At most this many keys go into a system (a principal registers at
/// most as many; the guest's identity unit checks the same bound).
pub const MAX_KEYS: usize = crate::keystore::MAX_KEYS_PER_PRINCIPAL;

/// The sshd drop-in that lets root log in with a password.
pub const SSHD_DROP_IN: &str = "/etc/ssh/sshd_config.d/50-guest-installer.conf";
/// Its text. sshd takes the first value it reads for a keyword, and
/// Debian's sshd_config includes `sshd_config.d/*.conf` before its own.
pub const SSHD_DROP_IN_TEXT: &str = "# Written by guest-installer: root was installed with a password and no SSH key,\n\
# so sshd lets root log in with that password. Once root has a key in\n\
# /root/.ssh/authorized_keys, remove this file and reload ssh.\n\
PermitRootLogin yes\n";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootLoginError {
    #[error("nobody could log in: there is no SSH key to install and no root password")]
    NoWayIn,
    #[error("there are more than {MAX_KEYS} SSH keys to install")]
    TooManyKeys,
}

/// Why a request's root login could not be settled (mapped to exit codes
/// in `error.rs`). Never echoes the password line.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("root password on standard input {0}")]
    Password(Rule),
    #[error(
        "no SSH key is registered for {0} and no root password was given, so nobody could log in: register a key \
         first (`guest-installer key add \"$(cat ~/.ssh/id_ed25519.pub)\"`), or give a root password as the last argument"
    )]
    NoKeyNoPassword(crate::types::Principal),
    #[error("keys=none and no root password: nobody could log in; give a root password as the last argument, or leave out keys=none")]
    KeysNoneNoPassword,
    #[error("root on the host has no registered SSH keys: give a root password (or its crypt hash) on standard input")]
    LocalNoPassword,
    #[error("{0}")]
    Login(RootLoginError),
    #[error("{0}")]
    Keys(#[from] KeyStoreError),
}

/// How root will log in to what `caller` installs: the caller's registered
/// keys (a principal's; local root has none), unless `no_keys`
/// (`keys=none`), and the password line on `stdin` (empty: none). Called
/// after the request is authorized: it reads stdin.
pub fn for_request(caller: &Caller, store: &KeyStore, no_keys: bool, stdin: &mut dyn Read) -> Result<RootLogin, RequestError> {
    let keys = match (caller, no_keys) {
        (Caller::Remote(p), false) => store.keys_of(p)?,
        _ => Vec::new(),
    };
    let password = RootPassword::read_from(stdin).map_err(RequestError::Password)?;
    RootLogin::new(keys, password).map_err(|e| match (e, caller) {
        (RootLoginError::NoWayIn, _) if no_keys => RequestError::KeysNoneNoPassword,
        (RootLoginError::NoWayIn, Caller::Remote(p)) => RequestError::NoKeyNoPassword(p.clone()),
        (RootLoginError::NoWayIn, Caller::LocalRoot) => RequestError::LocalNoPassword,
        (e, _) => RequestError::Login(e),
    })
}

/// How root may log in. Never without a way in: some key, or a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootLogin {
    keys: Vec<PublicKey>,
    password: RootPassword,
    /// The drop-in: a password and no key.
    ssh_password: bool,
}

impl RootLogin {
    /// Keys and a password (or none) as an owner asked for them.
    pub fn new(keys: Vec<PublicKey>, password: RootPassword) -> Result<Self, RootLoginError> {
        if keys.len() > MAX_KEYS {
            return Err(RootLoginError::TooManyKeys);
        }
        if keys.is_empty() && password == RootPassword::Locked {
            return Err(RootLoginError::NoWayIn);
        }
        let ssh_password = keys.is_empty();
        Ok(RootLogin { keys, password, ssh_password })
    }

    /// A password for the console and nothing else: a template's build
    /// machine, whose root is locked again when the template is sealed.
    pub fn console_only(hash: CryptHash) -> Self {
        RootLogin { keys: Vec::new(), password: RootPassword::Hash(hash), ssh_password: false }
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn password(&self) -> &RootPassword {
        &self.password
    }

    /// Whether sshd lets root in with the password (our drop-in).
    pub fn ssh_password(&self) -> bool {
        self.ssh_password
    }

    /// Whether root has a password at all (it works on the console).
    pub fn console_password(&self) -> bool {
        self.password.hash().is_some()
    }

    /// `/root/.ssh/authorized_keys` as written: one validated key a line.
    pub fn authorized_keys(&self) -> String {
        self.keys.iter().map(|k| k.line() + "\n").collect()
    }

    /// How root may log in, in words: the reply's `root login:` line.
    pub fn describe(&self) -> String {
        let n = self.keys.len();
        let keys = format!("{n} SSH key{}", if n == 1 { "" } else { "s" });
        match (n, self.console_password()) {
            (0, _) if self.ssh_password => "password, over SSH and on the console (no SSH key installed)".into(),
            (0, _) => "password, on the console only".into(),
            (_, true) => format!("{keys} (the password works on the console only)"),
            (_, false) => format!("{keys} (no root password: the account is locked)"),
        }
    }

    /// The reply's `root_login` object.
    pub fn json(&self) -> Value {
        json!({"ssh_keys": self.keys.len(), "ssh_password": self.ssh_password, "console_password": self.console_password()})
    }

    /// A POSIX sh script that makes an installed system (as root, at its
    /// `/`) match this: authorized_keys replaced (dir 0700, file 0600,
    /// root's), root's password locked if there is none, the drop-in
    /// written if sshd is to take the password. `None`: nothing to do.
    /// Every line is ours; each key is a validated [`PublicKey`] (no
    /// quote, no newline) inside a quoted here-document, so no key text
    /// is ever read as shell.
    pub fn target_script(&self) -> Option<String> {
        let mut s = String::new();
        if !self.keys.is_empty() {
            s.push_str(
                "mkdir -p /root/.ssh\nchown root:root /root/.ssh\nchmod 700 /root/.ssh\n\
                 cat >/root/.ssh/authorized_keys.gi-new <<'GI_KEYS'\n",
            );
            s.push_str(&self.authorized_keys());
            s.push_str(
                "GI_KEYS\nchown root:root /root/.ssh/authorized_keys.gi-new\nchmod 600 /root/.ssh/authorized_keys.gi-new\n\
                 mv -f /root/.ssh/authorized_keys.gi-new /root/.ssh/authorized_keys\n",
            );
        }
        if self.password == RootPassword::Locked {
            s.push_str("usermod -p '!' root\n");
        }
        if self.ssh_password {
            s.push_str(&format!(
                "mkdir -p /etc/ssh/sshd_config.d\ncat >{SSHD_DROP_IN}.gi-new <<'GI_SSHD'\n{SSHD_DROP_IN_TEXT}GI_SSHD\n\
                 chmod 644 {SSHD_DROP_IN}.gi-new\nmv -f {SSHD_DROP_IN}.gi-new {SSHD_DROP_IN}\n"
            ));
        }
        if s.is_empty() {
            return None;
        }
        Some(format!("# guest-installer: how root logs in\nset -eu\numask 077\n{s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH+2i5AKkiRgfmm31jnpzTRX9C1c7OzuKqgSZ7WAoSvs bob@laptop";

    fn key() -> PublicKey {
        PublicKey::parse_line(ED25519).unwrap()
    }

    fn hash() -> CryptHash {
        CryptHash::hash_cleartext("pw").unwrap()
    }

    #[test]
    fn there_is_always_a_way_in_and_the_drop_in_only_without_keys() {
        assert_eq!(RootLogin::new(vec![], RootPassword::Locked), Err(RootLoginError::NoWayIn));
        assert_eq!(RootLogin::new(vec![key(); MAX_KEYS + 1], RootPassword::Locked), Err(RootLoginError::TooManyKeys));
        let pw_only = RootLogin::new(vec![], RootPassword::Hash(hash())).unwrap();
        assert!(pw_only.ssh_password() && pw_only.console_password());
        let keys_pw = RootLogin::new(vec![key()], RootPassword::Hash(hash())).unwrap();
        assert!(!keys_pw.ssh_password() && keys_pw.console_password());
        let keys_only = RootLogin::new(vec![key(), key()], RootPassword::Locked).unwrap();
        assert!(!keys_only.ssh_password() && !keys_only.console_password());
        assert_eq!(keys_only.json(), json!({"ssh_keys": 2, "ssh_password": false, "console_password": false}));
        assert_eq!(keys_only.describe(), "2 SSH keys (no root password: the account is locked)");
        assert_eq!(keys_pw.describe(), "1 SSH key (the password works on the console only)");
        assert!(pw_only.describe().contains("over SSH"));
        let build = RootLogin::console_only(hash());
        assert!(!build.ssh_password() && build.target_script().is_none());
    }

    #[test]
    fn the_script_writes_what_each_case_needs() {
        let s = RootLogin::new(vec![key()], RootPassword::Locked).unwrap().target_script().unwrap();
        assert!(s.contains(&format!("<<'GI_KEYS'\n{ED25519}\nGI_KEYS\n")), "{s}");
        assert!(s.contains("usermod -p '!' root") && !s.contains(SSHD_DROP_IN), "{s}");
        let s = RootLogin::new(vec![], RootPassword::Hash(hash())).unwrap().target_script().unwrap();
        assert!(!s.contains("GI_KEYS") && !s.contains("usermod") && s.contains("PermitRootLogin yes\nGI_SSHD\n"), "{s}");
        // The hash is never part of it (user-setup sets it from the preseed).
        assert!(!s.contains("$6$"));
    }
}
