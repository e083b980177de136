//! The door: the console account's login shell (`guest-installer-console`).
//!
//! sshd runs a forced command through the account's shell, as
//! `guest-installer-console -c "door PRINCIPAL SOCKET"`; the command comes
//! from `console-keys` for the key sshd verified, so the client cannot
//! change it. What the client asked for is in `SSH_ORIGINAL_COMMAND`: it
//! must be `console VM`. The door takes nothing else from its environment
//! (a client may send some variables, e.g. `LANG`), reads no file and runs
//! no program: it connects to `console-serve` as the account, asks, and
//! relays bytes. Whoever may attach, and to which machine, is decided
//! there, as root, from the account's uid and these typed values.

use super::protocol::{self, Request};
use super::relay::{self, Side};
use super::tty::RawMode;
use crate::error::Error;
use crate::types::{Principal, Rule, VmName};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the door waits for the root side's answer (it settles the
/// machine's install first, as `status` does).
const ANSWER_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DoorError {
    /// Not started by sshd with the forced command `console-keys` gives.
    #[error("this account only serves the console door (ssh -t ACCOUNT@HOST console VM)")]
    NotForced,
    #[error("usage: console VM (for example: ssh -t ACCOUNT@HOST console web1); Ctrl-] detaches")]
    Usage,
    #[error("invalid machine name: {0}")]
    VmName(Rule),
    #[error("the console service at {path} cannot be reached ({source}); ask an admin to enable it")]
    Connect { path: PathBuf, source: io::Error },
    #[error("the console service closed the connection without an answer")]
    NoAnswer,
    #[error("the connection to the console service failed: {0}")]
    Io(#[from] io::Error),
}

/// What the forced command says: who the key belongs to, and where
/// `console-serve` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forced {
    pub principal: Principal,
    pub socket: PathBuf,
}

impl Forced {
    /// The forced command's text, as `console-keys` writes it.
    pub fn command(principal: &Principal, socket: &Path) -> String {
        format!("door {principal} {}", socket.display())
    }

    /// The door's argv after argv[0]: exactly `-c "door PRINCIPAL SOCKET"`.
    pub fn parse(args: &[OsString]) -> Result<Forced, DoorError> {
        let [c, cmd] = args else { return Err(DoorError::NotForced) };
        if c != "-c" {
            return Err(DoorError::NotForced);
        }
        let cmd = cmd.to_str().ok_or(DoorError::NotForced)?;
        let mut words = cmd.split(' ');
        let (Some("door"), Some(p), Some(s), None) = (words.next(), words.next(), words.next(), words.next()) else {
            return Err(DoorError::NotForced);
        };
        let principal = Principal::parse(p).map_err(|_| DoorError::NotForced)?;
        if !socket_path_ok(s) {
            return Err(DoorError::NotForced);
        }
        Ok(Forced { principal, socket: PathBuf::from(s) })
    }
}

/// The config's rule for paths (absolute, no `..`, a safe character set),
/// within a Unix socket's length.
fn socket_path_ok(s: &str) -> bool {
    s.starts_with('/')
        && s.len() <= crate::config::MAX_SOCKET_PATH
        && !s.split('/').any(|c| c == "..")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
}

/// What the client asked for (`SSH_ORIGINAL_COMMAND`): `console VM`.
pub fn parse_original(cmd: Option<&OsStr>) -> Result<VmName, DoorError> {
    let cmd = cmd.and_then(OsStr::to_str).ok_or(DoorError::Usage)?;
    if cmd.len() > 256 || cmd.chars().any(|c| c.is_control() && c != '\t') {
        return Err(DoorError::Usage);
    }
    let words: Vec<&str> = cmd.split_ascii_whitespace().collect();
    match words[..] {
        ["console", vm] => VmName::parse(vm).map_err(DoorError::VmName),
        _ => Err(DoorError::Usage),
    }
}

/// The door's `main`: its exit code.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let original = std::env::var_os("SSH_ORIGINAL_COMMAND");
    match run(&args, original.as_deref()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("guest-installer: {}: {}", e.kind, e.message);
            e.kind.exit_code()
        }
    }
}

/// Asks `console-serve` for the console and relays it until either side
/// ends.
pub fn run(args: &[OsString], original: Option<&OsStr>) -> Result<(), Error> {
    let forced = Forced::parse(args)?;
    let vm = parse_original(original)?;
    let mut sock =
        UnixStream::connect(&forced.socket).map_err(|source| DoorError::Connect { path: forced.socket.clone(), source })?;
    sock.set_read_timeout(Some(ANSWER_WAIT)).map_err(DoorError::Io)?;
    sock.set_write_timeout(Some(ANSWER_WAIT)).map_err(DoorError::Io)?;
    sock.write_all(Request { principal: forced.principal, vm }.line().as_bytes()).map_err(DoorError::Io)?;
    let answer = read_line(&mut sock)?;
    protocol::parse_reply(&answer)?;
    sock.set_read_timeout(None).map_err(DoorError::Io)?;
    sock.set_write_timeout(None).map_err(DoorError::Io)?;
    let (stdin, stdout) = (io::stdin(), io::stdout());
    // Raw only now: a refusal above prints as normal text.
    let raw = RawMode::enable(stdin.as_fd()).map_err(DoorError::Io)?;
    let ended = relay::relay(Side { read: stdin.as_fd(), write: stdout.as_fd() }, Side::both(sock.as_fd()), None);
    drop(raw);
    ended.map(|_| ()).map_err(|e| DoorError::Io(e).into())
}

/// One line, read a byte at a time: what follows it is the console's.
fn read_line(sock: &mut UnixStream) -> Result<String, DoorError> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match sock.read(&mut b) {
            Ok(0) => return Err(DoorError::NoAnswer),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) if line.len() < protocol::MAX_LINE => line.push(b[0]),
            Ok(_) => return Err(DoorError::NoAnswer),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DoorError::Io(e)),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_the_forced_command_is_taken() {
        let f = Forced::parse(&args(&["-c", "door bob@EX.ORG /run/guest-installer/console.sock"])).unwrap();
        assert_eq!(f.principal.as_str(), "bob@EX.ORG");
        assert_eq!(f.socket, Path::new("/run/guest-installer/console.sock"));
        assert_eq!(Forced::command(&f.principal, &f.socket), "door bob@EX.ORG /run/guest-installer/console.sock");
        for bad in [
            &[][..],
            &["-c"],
            &["-l"],
            &["-c", ""],
            &["-c", "sh"],
            &["-c", "console web1"],
            &["-c", "door bob@EX.ORG"],
            &["-c", "door bob@EX.ORG /run/x.sock extra"],
            &["-c", "door  bob@EX.ORG /run/x.sock"],
            &["-c", "door bob@EX.ORG /run/x.sock; sh"],
            &["-c", "door bob@EX.ORG$(id) /run/x.sock"],
            &["-c", "door 'bob@EX.ORG' /run/x.sock"],
            &["-c", "door bob@EX.ORG\n/run/x.sock"],
            &["-c", "door bob@EX.ORG relative.sock"],
            &["-c", "door bob@EX.ORG /run/../tmp/x.sock"],
            &["-c", "door bob@EX.ORG /tmp/x y.sock"],
            &["-c", "door bob@EX.ORG /run/x.sock", "more"],
            &["-x", "door bob@EX.ORG /run/x.sock"],
        ] {
            assert!(matches!(Forced::parse(&args(bad)), Err(DoorError::NotForced)), "{bad:?}");
        }
        let long = format!("door bob@EX.ORG /{}", "a".repeat(120));
        assert!(Forced::parse(&args(&["-c", &long])).is_err());
    }

    #[test]
    fn the_client_may_ask_for_a_console_and_nothing_else() {
        let ok = |s: &str| parse_original(Some(OsStr::new(s))).unwrap().to_string();
        assert_eq!(ok("console web1"), "web1");
        assert_eq!(ok("  console\tweb1 "), "web1");
        assert!(matches!(parse_original(None), Err(DoorError::Usage)));
        for bad in [
            "",
            "console",
            "console web1 web2",
            "shell",
            "/bin/sh",
            "console web1; sh",
            "console web1\nid",
            "console web1\r",
            "scp -t /tmp",
            "rsync --server . /",
            "internal-sftp",
        ] {
            assert!(matches!(parse_original(Some(OsStr::new(bad))), Err(DoorError::Usage)), "{bad:?}");
        }
        for bad in ["console ../etc", "console WEB1", "console web1;", "console $(id)", "console -web1"] {
            assert!(matches!(parse_original(Some(OsStr::new(bad))), Err(DoorError::VmName(_))), "{bad:?}");
        }
        assert!(parse_original(Some(OsStr::new(&format!("console {}", "a".repeat(300))))).is_err());
        use std::os::unix::ffi::OsStrExt;
        assert!(matches!(parse_original(Some(OsStr::from_bytes(b"console w\xffeb1"))), Err(DoorError::Usage)));
    }

    #[test]
    fn a_refusal_from_the_root_side_is_the_doors_exit_status() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = [0u8; 64];
            let n = c.read(&mut req).unwrap();
            c.write_all(b"error denied bob@EX.ORG may not manage machine web1\n").unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let a = args(&["-c", &format!("door bob@EX.ORG {}", sock.display())]);
        let e = run(&a, Some(OsStr::new("console web1"))).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Denied);
        assert!(e.message.contains("may not manage"), "{}", e.message);
        assert_eq!(t.join().unwrap(), "console bob@EX.ORG web1\n");
        let e = run(&args(&["-c", "door bob@EX.ORG /nonexistent/x.sock"]), Some(OsStr::new("console web1"))).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Failed);
    }
}
