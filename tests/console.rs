//! The console door, end to end with the real programs: OpenSSH's sshd on
//! a loopback port with the shipped drop-in (only the program's path and
//! the account's name changed), a real `ssh -tt` on a pseudo-terminal,
//! the door as the account's login shell, `console-serve` behind a socket
//! as systemd's socket unit runs it (`systemd-socket-activate`), and a
//! clone booted under qemu whose login prompt the owner reaches, logs in
//! at, runs a command on and detaches from. Then everyone else: a
//! stranger's registered key, an unregistered key, an owner at another's
//! machine, a second session at once, forwarding, a process that is not
//! the door; and the audit records. The xl driver's `xl console` is
//! driven through the repo's xl stand-in (tests/support/xl).
//!
//! Needs root (it adds a system account and runs sshd) and, from
//! scripts/setup.sh: openssh-server, openssh-client, systemd (for
//! systemd-socket-activate), qemu and the template fixture's tools.

mod common;

use common::realm::run_bounded;
use common::*;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOOR: &str = env!("CARGO_BIN_EXE_guest-installer-console");
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
const PASSWORD: &str = "console door test pw";
/// A clone that has not shown its login prompt by then is hung (about a
/// minute under TCG).
const BOOT_BOUND: Duration = Duration::from_secs(420);
/// Generous bounds for a step of an interactive session under TCG.
const STEP: Duration = Duration::from_secs(120);

fn skip_unless_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIPPED: the console door tests add a system account and run sshd; they need root");
    true
}

/// A system account like the package's (no password that can match, no
/// home, the door as its login shell), removed on drop.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

impl Account {
    fn create(name: &str) -> Account {
        // What a killed run of this test left.
        let _ = Command::new("userdel").arg(name).stderr(Stdio::null()).status();
        sh(Command::new("useradd").args(["--system", "--no-create-home", "--home-dir", "/", "--shell", DOOR, "--password", "*", "--user-group", name]));
        let u = nix::unistd::User::from_name(name).unwrap().expect("the account just made");
        Account { name: name.to_owned(), uid: u.uid.as_raw(), gid: u.gid.as_raw() }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// The test's `[console]` section: its account, and a socket beside its state.
fn console_config(env: &Env, account: &Account) -> PathBuf {
    let sock = env.root().join("console.sock");
    let mut f = fs::OpenOptions::new().append(true).open(&env.config).unwrap();
    write!(f, "\n[console]\naccount = \"{}\"\nsocket = \"{}\"\n", account.name, sock.display()).unwrap();
    sock
}

/// `console-serve` started for each connection to the console socket, as
/// the package's socket unit does (root:ACCOUNT, mode 0660). Stopped on drop.
struct Activator {
    child: Child,
    sock: PathBuf,
}

impl Activator {
    fn start(env: &Env, account: &Account, sock: &Path) -> Activator {
        let log = fs::File::create(env.root().join("console-serve.log")).unwrap();
        let child = Command::new("systemd-socket-activate")
            .args(["--accept", "--inetd", "--listen"])
            .arg(sock)
            .arg("-E")
            .arg(format!("GUEST_INSTALLER_CONFIG={}", env.config.display()))
            .arg(bin())
            .arg("console-serve")
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("systemd-socket-activate (package systemd)");
        let a = Activator { child, sock: sock.to_owned() };
        wait_until("the console socket", Duration::from_secs(20), || sock.exists());
        nix::unistd::chown(sock, Some(0.into()), Some(account.gid.into())).unwrap();
        fs::set_permissions(sock, fs::Permissions::from_mode(0o660)).unwrap();
        a
    }
}

impl Drop for Activator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.sock);
    }
}

fn wait_until(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a program wrote, collected by a thread as it comes.
struct Collected {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl Collected {
    fn from(mut r: impl Read + Send + 'static) -> Collected {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // A pseudo-terminal's master says EIO once the other end is closed.
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Collected { buf }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Waits until `what` has been written; panics with the end of it if not.
    fn wait_for(&self, what: &str, limit: Duration) {
        let t = Instant::now();
        while !self.text().contains(what) {
            if t.elapsed() > limit {
                panic!("{what:?} did not come within {limit:?}; got:\n{}", readable_tail(&self.text(), 30));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A program on a pseudo-terminal of its own (its controlling terminal),
/// as a person's `ssh -t` runs; killed on drop.
struct Terminal {
    master: fs::File,
    out: Collected,
    child: Child,
}

impl Terminal {
    fn spawn(mut cmd: Command) -> Terminal {
        let (master, slave) = guest_installer::console_door::tty::openpty().unwrap();
        let ws = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ with a winsize we own.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        // SAFETY: setsid and ioctl only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(slave);
        let master = fs::File::from(master);
        let out = Collected::from(master.try_clone().unwrap());
        Terminal { master, out, child }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// The exit status, within `limit`.
    fn wait_exit(&mut self, limit: Duration) -> i32 {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            if t.elapsed() > limit {
                panic!("still running after {limit:?}; it wrote:\n{}", readable_tail(&self.out.text(), 30));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory for what sshd insists be root's and writable by no one
/// else along its whole path (the AuthorizedKeysCommand): under /run,
/// root's on every host, not under /tmp (world-writable) nor under the
/// checkout, which may lie anywhere (a clone in /tmp fails sshd's check).
fn root_only_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("gi-console-test-").tempdir_in("/run").unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// An SSH key pair made with ssh-keygen; returns (private key, public line).
fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&key));
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim_end().to_owned())
}

/// A free loopback port (the kernel's pick; sshd binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test's sshd: the shipped drop-in with its account and program path
/// replaced, included first as Debian's sshd_config includes drop-ins.
/// Stopped on drop.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Sshd {
    fn start(dir: &Path, env: &Env, account: &Account) -> Sshd {
        assert!(Path::new("/usr/sbin/sshd").exists(), "sshd is not installed: run scripts/setup.sh (openssh-server)");
        fs::create_dir_all("/run/sshd").unwrap();
        // console-keys as sshd runs it: an empty environment, so the
        // wrapper names the test's config.
        let wrapper = dir.join("console-keys-wrapper");
        write_executable(
            &wrapper,
            &format!("#!/bin/sh\nexec /usr/bin/env -i GUEST_INSTALLER_CONFIG={} {} \"$@\"\n", env.config.display(), bin().display()),
        );
        let shipped = fs::read_to_string(repo().join("etc/sshd/guest-installer-console.conf")).unwrap();
        let (a, b) = ("Match User guest\n", "AuthorizedKeysCommand /usr/sbin/guest-installer console-keys ");
        assert_eq!((shipped.matches(a).count(), shipped.matches(b).count()), (1, 1), "the shipped drop-in changed shape");
        let dropin = shipped
            .replace(a, &format!("Match User {}\n", account.name))
            .replace(b, &format!("AuthorizedKeysCommand {} console-keys ", wrapper.display()));
        fs::write(dir.join("dropin.conf"), dropin).unwrap();
        sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join("hostkey")));
        let port = free_port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Include {dropin}\nListenAddress 127.0.0.1\nPort {port}\nHostKey {key}\nPidFile none\nUsePAM yes\n\
                 KbdInteractiveAuthentication no\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\n\
                 AllowUsers {user}\nLogLevel VERBOSE\n",
                dropin = dir.join("dropin.conf").display(),
                key = dir.join("hostkey").display(),
                user = account.name,
            ),
        )
        .unwrap();
        let check = run_bounded(
            {
                let mut c = Command::new("/usr/sbin/sshd");
                c.arg("-t").arg("-f").arg(&config);
                c
            },
            b"",
            Duration::from_secs(30),
        );
        assert_eq!(check.code, 0, "sshd -t refuses the config: {}", check.stderr);
        let log = dir.join("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = Sshd { child, port, log };
        wait_until("sshd listening", Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        s
    }

    /// `ssh` with `key` as `account`, no config, agent or known hosts of
    /// the machine's; `tty`: `-tt` (a terminal even from a pipe) or `-T`.
    fn ssh(&self, key: &Path, account: &Account, tty: bool, extra: &[&str], command: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.env_clear().env("PATH", PATH).arg(if tty { "-tt" } else { "-T" });
        c.args(["-F", "/dev/null", "-i"]).arg(key).args(["-p", &self.port.to_string()]);
        for o in [
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "BatchMode=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "ConnectTimeout=30",
        ] {
            c.args(["-o", o]);
        }
        c.args(extra).arg(format!("{}@127.0.0.1", account.name)).args(command);
        c
    }

    /// A refused or short `ssh -T` request: its output.
    fn request(&self, key: &Path, account: &Account, extra: &[&str], command: &[&str]) -> Out {
        run_bounded(self.ssh(key, account, false, extra, command), b"", STEP)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Audit records of console sessions (`action=console`), gathered.
fn console_records(all: &[String]) -> Vec<&String> {
    all.iter().filter(|r| r.contains(" action=console ")).collect()
}

const BANNER_CON1: &str = "[guest-installer: the console of con1; Ctrl-] detaches]";

#[test]
fn owners_reach_the_login_prompt_over_real_sshd_and_nobody_else_gets_in() {
    if skip_unless_root() {
        return;
    }
    let env = Env::new();
    env.use_qemu();
    add_template(&env);
    let account = Account::create("gi-console-test");
    let sock = console_config(&env, &account);
    // con1: bob's (and carol's) clone; con2: mallory's, never started.
    let vol = env.volume_qcow2("con1");
    env.machine_with("con1", 1, None, &["memory=512", &format!("disk={}", vol.display())]);
    let con2 = env.volume("con2");
    env.run(
        As::Root,
        &[
            "machine", "add", "con2", &format!("owner={STRANGER}"), "ip=192.0.2.12", "netmask=255.255.255.0", "gateway=192.0.2.1",
            "nameserver=192.0.2.53", "mac=00:16:3e:00:00:02", &format!("disk={}", con2.display()),
        ],
        b"",
    )
    .ok();
    let guest = Guest::new(&env, "con1");
    env.run(As::Remote(OWNER), &["install", "con1", "hostname=gi-con", "template=tpl", "--json"], PASSWORD.as_bytes()).ok();

    // While it boots: keys, sshd, the console service.
    let dir = root_only_dir();
    let (bob, bob_pub) = keypair(dir.path(), "bob");
    let (carol, carol_pub) = keypair(dir.path(), "carol");
    let (mallory, mallory_pub) = keypair(dir.path(), "mallory");
    let (eve, _) = keypair(dir.path(), "eve");
    for (who, line) in [(OWNER, &bob_pub), (COOWNER, &carol_pub), (STRANGER, &mallory_pub)] {
        env.run(As::Remote(who), &["key", "add", line], b"").ok();
    }
    let sshd = Sshd::start(dir.path(), &env, &account);
    let _serve = Activator::start(&env, &account, &sock);
    let mut audit: Vec<String> = env.audit();

    let t = Instant::now();
    while !console(&env, "con1").contains("gi-con login:") {
        assert!(t.elapsed() < BOOT_BOUND, "no login prompt within {BOOT_BOUND:?}:\n{}", readable_tail(&console(&env, "con1"), 30));
        assert!(guest.qemu_alive(), "qemu is gone:\n{}", readable_tail(&console(&env, "con1"), 30));
        std::thread::sleep(Duration::from_millis(500));
    }

    // ---- bob attaches, logs in as root on the console, runs a command.
    let mut s = Terminal::spawn(sshd.ssh(&bob, &account, true, &[], &["console", "con1"]));
    s.out.wait_for(BANNER_CON1, STEP);
    let attached_at = Instant::now();
    s.send(b"\r");
    s.out.wait_for("gi-con login:", STEP);
    s.send(b"root\r");
    s.out.wait_for("Password:", STEP);
    s.send(format!("{PASSWORD}\r").as_bytes());
    s.out.wait_for("root@gi-con", STEP);
    s.send(b"hostname; echo gi-$((6*7))-marker\r");
    s.out.wait_for("gi-42-marker", STEP);
    assert!(s.out.text().contains("gi-con\r\ngi-42-marker"), "{}", readable_tail(&s.out.text(), 10));

    // One session at a time: carol, an owner too, is told it is taken.
    let o = sshd.request(&carol, &account, &[], &["console", "con1"]);
    assert_eq!(o.code, 5, "a second session: {o:?}");
    assert!(o.stderr.contains("someone is attached to the console of con1"), "{o:?}");
    // The machine's requests go on meanwhile (no lock of theirs is held),
    // and its log says a session runs, not what it shows.
    let st = env.run(As::Remote(OWNER), &["status", "con1", "--json"], b"").ok().json();
    assert_eq!((st["state"].as_str(), st["running"].as_bool()), (Some("installed"), Some(true)), "{st}");
    assert!(st["console_tail"].as_str().unwrap_or_default().contains("console session began"), "{st}");

    // Ctrl-] detaches; ssh ends with the door's status, 0.
    s.send(&[0x1d]);
    assert_eq!(s.wait_exit(STEP), 0, "{}", readable_tail(&s.out.text(), 10));
    let held = attached_at.elapsed().as_secs_f64();
    s.out.wait_for("[guest-installer: detached from the console of con1]", STEP);
    let log = console(&env, "con1");
    assert!(!log.contains("gi-42-marker"), "what the owner saw is in the console log");
    assert!(log.contains("the console session ended"), "{}", readable_tail(&log, 5));

    // ---- Nobody else: a stranger's registered key, an unregistered key,
    // an owner at another's machine, anything but `console VM`, forwarding.
    let o = sshd.request(&mallory, &account, &[], &["console", "con1"]);
    assert_eq!(o.code, 3, "a stranger: {o:?}");
    assert!(o.stderr.contains("may not manage machine con1"), "{o:?}");
    let o = sshd.request(&eve, &account, &[], &["console", "con1"]);
    assert_eq!(o.code, 255, "an unregistered key: {o:?}");
    assert!(o.stderr.contains("Permission denied (publickey)"), "{o:?}");
    let o = sshd.request(&bob, &account, &[], &["console", "con2"]);
    assert_eq!(o.code, 3, "bob at mallory's machine: {o:?}");
    for cmd in [&["id"][..], &[], &["console"], &["console", "con1", "; sh"], &["door", OWNER, "/tmp/x.sock"]] {
        let o = sshd.request(&bob, &account, &[], cmd);
        assert_eq!(o.code, 2, "{cmd:?}: {o:?}");
        assert!(o.stderr.contains("usage: console VM") || o.stderr.contains("invalid machine name"), "{cmd:?}: {o:?}");
    }
    let o = sshd.request(&mallory, &account, &["-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9"], &["console", "con2"]);
    assert_eq!(o.code, 255, "a remote forward: {o:?}");
    assert!(o.stderr.contains("forwarding failed"), "{o:?}");
    // A local process that is not the door (root, here) is refused by
    // console-serve whatever it claims.
    let mut c = UnixStream::connect(&sock).unwrap();
    // console-serve may have refused and closed before the request is
    // written (it checks the peer first): a broken pipe here is its answer
    // arriving early, which is read below all the same.
    let _ = c.write_all(format!("console {OWNER} con1\n").as_bytes());
    // Its answer line (the connection is then closed with the request
    // unread: a reset may follow, as the door never reads past the line).
    let mut answer = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(c), &mut answer).unwrap();
    assert!(answer.starts_with("error denied only the console door"), "{answer:?}");

    // ---- The session ends when the guest stops.
    let mut s = Terminal::spawn(sshd.ssh(&bob, &account, true, &[], &["console", "con1"]));
    s.out.wait_for(BANNER_CON1, STEP);
    env.run(As::Remote(OWNER), &["stop", "con1", "--force", "--json"], b"").ok();
    assert_eq!(s.wait_exit(STEP), 0, "{}", readable_tail(&s.out.text(), 10));
    s.out.wait_for("[guest-installer: the console of con1 closed: the guest stopped]", STEP);
    let o = sshd.request(&bob, &account, &[], &["console", "con1"]);
    assert_eq!(o.code, 2, "a stopped machine: {o:?}");
    assert!(o.stderr.contains("not running"), "{o:?}");

    // ---- The audit log: who attached to what, when (syslog's time), for how long.
    audit.extend(env.audit());
    let recs = console_records(&audit);
    let bob_rec = |outcome: &str| recs.iter().filter(|r| r.contains(&format!("principal={OWNER} action=console vm=con1 outcome={outcome}"))).count();
    assert_eq!(bob_rec("started"), 2, "{recs:#?}");
    let detached = recs.iter().find(|r| r.contains("ended: detached")).unwrap_or_else(|| panic!("{recs:#?}"));
    let secs: f64 = detached.split("session of ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(secs > 0.0 && secs <= held + 1.0, "{detached} (held {held:.1} s)");
    assert!(recs.iter().any(|r| r.contains("ended: guest-stopped")), "{recs:#?}");
    assert!(recs.iter().any(|r| r.contains(&format!("principal={COOWNER} action=console vm=con1 outcome=busy"))), "{recs:#?}");
    assert!(recs.iter().any(|r| r.contains(&format!("principal={STRANGER} action=console vm=con1 outcome=denied"))), "{recs:#?}");
    assert!(recs.iter().any(|r| r.contains(&format!("principal={OWNER} action=console vm=con2 outcome=denied"))), "{recs:#?}");
    // Never what flowed.
    assert!(!audit.iter().any(|r| r.contains("gi-42-marker") || r.contains(PASSWORD)), "{audit:#?}");
    // sshd saw the keys it let in as the account's, and no other login.
    let log = sshd.log();
    assert!(log.contains(&format!("Accepted publickey for {}", account.name)), "{log}");
    drop(guest);
}

#[test]
fn console_keys_answers_for_the_account_and_registered_keys_only() {
    if skip_unless_root() {
        return;
    }
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(&env.config).unwrap();
    write!(f, "\n[console]\naccount = \"gi-console-door\"\nsocket = \"/run/gi-test/console.sock\"\n").unwrap();
    let (_, bob_pub) = keypair(dir.path(), "bob");
    let (_, eve_pub) = keypair(dir.path(), "eve");
    env.run(As::Remote(OWNER), &["key", "add", &bob_pub], b"").ok();
    let fp = |line: &str| guest_installer::sshkey::PublicKey::parse_line(line).unwrap().fingerprint().to_string();
    let keys = |user: &str, fp: &str| env.run(As::Root, &["console-keys", user, fp], b"");
    let o = keys("gi-console-door", &fp(&bob_pub));
    let key_part = bob_pub.split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(
        o.ok().stdout,
        format!("restrict,pty,command=\"door {OWNER} /run/gi-test/console.sock\" {key_part} bob\n"),
    );
    let j = env.run(As::Root, &["console-keys", "gi-console-door", &fp(&bob_pub), "--json"], b"").ok().json();
    assert_eq!(j["authorized_keys"].as_array().unwrap().len(), 1, "{j}");
    // Another user, an unknown key: nothing, and sshd refuses the key.
    assert_eq!(keys("root", &fp(&bob_pub)).ok().stdout, "");
    assert_eq!(keys("gi-console-door", &fp(&eve_pub)).ok().stdout, "");
    // Only as sshd gives them; only for root.
    for bad in [&["console-keys", "gi-console-door"][..], &["console-keys", "gi-console-door", "MD5:aa:bb"], &["console-keys", "a b", "x"]] {
        assert_eq!(env.run(As::Root, bad, b"").code, 2, "{bad:?}");
    }
    assert_eq!(env.run(As::Remote(OWNER), &["console-keys", "gi-console-door", &fp(&bob_pub)], b"").code, 3);
    assert_eq!(env.run(As::Nobody, &["console-keys", "gi-console-door", &fp(&bob_pub)], b"").code, 3);
    assert_eq!(env.run(As::Remote(OWNER), &["console-serve"], b"").code, 3);
    let audit = env.audit();
    assert!(audit.iter().any(|r| r.contains("principal=root action=console-keys vm=- outcome=ok")), "{audit:#?}");
}

/// The door run as the account, without sshd: what sshd would run for
/// `principal` asking for `original`.
fn door(account: &Account, sock: &Path, principal: &str, original: &str) -> (Child, Collected) {
    let mut child = Command::new(DOOR)
        .arg("-c")
        .arg(format!("door {principal} {}", sock.display()))
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", original)
        .uid(account.uid)
        .gid(account.gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Collected::from(child.stdout.take().unwrap());
    (child, out)
}

fn wait_exit(child: &mut Child, limit: Duration) -> (i32, String) {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (s.code().unwrap_or(-1), err);
        }
        assert!(t.elapsed() < limit, "the door still runs after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Under xl: `xl console NAME` on a pseudo-terminal, through the stand-in.
/// (Not tested here: real xl and xenconsoled on a Xen host.)
#[test]
fn xl_console_runs_on_a_terminal_and_ends_with_the_domain() {
    if skip_unless_root() {
        return;
    }
    let env = Env::new();
    let account = Account::create("gi-console-xl");
    let sock = console_config(&env, &account);
    env.import("deb12", false);
    env.machine("vm1", 1, Some("deb12"));
    let _serve = Activator::start(&env, &account, &sock);
    // Nothing installed yet, then an install running: no console.
    let (mut c, _) = door(&account, &sock, OWNER, "console vm1");
    let (code, err) = wait_exit(&mut c, STEP);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nothing is installed"), "{err}");
    env.run(As::Remote(OWNER), &["install", "vm1", "--json"], PASSWORD.as_bytes()).ok();
    let (mut c, _) = door(&account, &sock, OWNER, "console vm1");
    let (code, err) = wait_exit(&mut c, STEP);
    assert_eq!(code, 5, "{err}");
    env.xl_guest_finishes("vm1");
    let (mut c, _) = door(&account, &sock, OWNER, "console vm1");
    let (code, err) = wait_exit(&mut c, STEP);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not running"), "{err}");
    env.run(As::Remote(OWNER), &["start", "vm1", "--json"], b"").ok();

    // Attached: xl console's output, an echo of what is typed, Ctrl-].
    let (mut c, out) = door(&account, &sock, COOWNER, "console vm1");
    out.wait_for("xl-standin: console of vm1", STEP);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"hello guest\r").unwrap();
    out.wait_for("hello guest", STEP);
    let calls = fs::read_to_string(env.xl.with_file_name("calls.log")).unwrap();
    assert!(calls.lines().any(|l| l == "console vm1"), "{calls}");
    stdin.write_all(&[0x1d]).unwrap();
    let (code, err) = wait_exit(&mut c, STEP);
    assert_eq!(code, 0, "{err}");
    out.wait_for("[guest-installer: detached from the console of vm1]", STEP);
    // xl console went with the session.
    wait_until("no xl console left", STEP, || {
        !sh(Command::new("ps").args(["-eo", "args"])).contains(&format!("{} console vm1", env.xl.display()))
    });

    // The domain goes away: xl console ends, and the session with it.
    let (mut c, out) = door(&account, &sock, OWNER, "console vm1");
    out.wait_for("xl-standin: console of vm1", STEP);
    env.xl_guest_finishes("vm1");
    let (code, err) = wait_exit(&mut c, STEP);
    assert_eq!(code, 0, "{err}");
    out.wait_for("[guest-installer: the console of vm1 closed: the guest stopped]", STEP);
    // A stranger, through the same door.
    env.run(As::Remote(OWNER), &["start", "vm1", "--json"], b"").ok();
    let (mut c, _) = door(&account, &sock, STRANGER, "console vm1");
    assert_eq!(wait_exit(&mut c, STEP).0, 3);
    let audit = env.audit();
    let recs = console_records(&audit);
    assert!(recs.iter().any(|r| r.contains(&format!("principal={COOWNER} action=console vm=vm1 outcome=ok")) && r.contains("ended: detached")), "{recs:#?}");
    assert!(recs.iter().any(|r| r.contains("ended: guest-stopped")), "{recs:#?}");
}
