//! `ssh` from inside a test's network namespace to a guest's real sshd:
//! no config, no known_hosts, bounded by its own timeouts.

use super::netns::NetNs;
use super::*;
use std::time::{Duration, Instant};

/// sshd answers within seconds of the login prompt; this is the bound.
pub const SSH_BOUND: Duration = Duration::from_secs(180);

/// How `ssh` authenticates.
pub enum Auth<'a> {
    Key(&'a Path),
    /// A script that prints the password (SSH_ASKPASS).
    Password(&'a Path),
}

/// `ssh root@addr cmd` from inside the namespace, bounded by its own
/// timeouts; no config, no known_hosts.
pub fn ssh(ns: &NetNs, auth: &Auth, addr: &str, cmd: &str) -> Out {
    let mut args = vec![
        "-F", "/dev/null",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        "-o", "ConnectTimeout=5",
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3",
    ];
    let mut c;
    match auth {
        Auth::Key(k) => {
            args.extend(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey", "-i", k.to_str().unwrap()]);
            c = ns.cmd("ssh", &args);
        }
        Auth::Password(askpass) => {
            args.extend(["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]);
            c = ns.cmd("ssh", &args);
            c.env("SSH_ASKPASS", askpass).env("SSH_ASKPASS_REQUIRE", "force").env("DISPLAY", ":0");
        }
    }
    c.arg(format!("root@{addr}")).arg(cmd).stdin(Stdio::null());
    Out::from_output(c.output().unwrap())
}

/// What sshd said, once it said anything: polls until `ssh` gets past the
/// connection (logged in, or refused), within [`SSH_BOUND`].
pub fn ssh_answer(ns: &NetNs, auth: &Auth, addr: &str, cmd: &str) -> Out {
    let deadline = Instant::now() + SSH_BOUND;
    loop {
        let o = ssh(ns, auth, addr, cmd);
        let unreachable = o.code == 255
            && ["Connection refused", "timed out", "No route to host", "Connection reset", "Connection closed", "kex_exchange_identification"]
                .iter()
                .any(|m| o.stderr.contains(m));
        if !unreachable {
            return o;
        }
        assert!(Instant::now() < deadline, "sshd on {addr} did not answer within {SSH_BOUND:?}: {o:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A fresh ed25519 key pair in `dir`: its private key file and public line.
pub fn keypair(dir: &Path, name: &str, comment: &str) -> (PathBuf, String) {
    let k = dir.join(name);
    sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(&k));
    let public = fs::read_to_string(k.with_extension("pub")).unwrap();
    (k, public.trim().to_owned())
}


/// Waits until each clone `(vm, host)` shows a login prompt with its own
/// host name; fails at once if one refused its identity seed, and after
/// `bound` (a hung guest) otherwise.
pub fn wait_for_login_prompts(env: &Env, guests: &[(&str, &str)], bound: Duration) {
    let deadline = Instant::now() + bound;
    for (vm, host) in guests {
        loop {
            let c = console(env, vm);
            assert!(!c.contains(guest_installer::template::REFUSED_LINE), "{vm} refused its seed:\n{}", readable_tail(&c, 40));
            // A guest that powered off will show no prompt: fail now.
            assert!(!c.contains("reboot: Power down"), "{vm} powered off before its login prompt:\n{}", readable_tail(&c, 40));
            if c.contains(&format!("{host} login:")) {
                break;
            }
            assert!(Instant::now() < deadline, "{vm}: no login prompt within {bound:?}\n{}", readable_tail(&c, 40));
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
