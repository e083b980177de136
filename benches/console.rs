//! The console door's two figures, with the release binaries. Run it (as
//! root) with
//!
//!     cargo bench --bench console
//!
//! (a) sshd's `AuthorizedKeysCommand`: a key store of 1,000 principals ×
//!     5 keys (written in the store's format, then checked through
//!     `KeyStore::lookup`), and `guest-installer console-keys guest FP`
//!     timed end to end, process start to exit, as sshd runs it (root, an
//!     empty environment but the config's path, audit records going to a
//!     syslog socket the bench drains): a registered key (first and last
//!     principal) and an unknown one. Median and p95 against the 50 ms
//!     target.
//!
//! (b) A keystroke's round trip. The guest is an echo on the far end of
//!     the serial socket pair the qemu supervisor reads; the supervisor's
//!     console server (`conserve::run`, the library function the real
//!     supervisor runs) serves the machine's console socket. Measured, one
//!     byte out and back, in the same run:
//!       direct:     a Unix socket straight to the echo;
//!       supervisor: the machine's console socket (what `console-serve`
//!                   talks to);
//!       door:       the real door (`guest-installer-console`, run as the
//!                   console account, here `nobody`, on pipes) → the real
//!                   `guest-installer console-serve` (root, spawned per
//!                   connection with it on stdin/stdout, as systemd does)
//!                   → the console socket → the echo.
//!     It prints each median and p95 and what the door adds over the
//!     direct socket, against the 5 ms target. (ssh's own hop is the same
//!     with or without the door and is not part of either.)
//!
//! Environment: `GI_BENCH_RUNS` (200: processes in (a)),
//! `GI_BENCH_ROUND_TRIPS` (2000: keystrokes per path in (b)).
//! It asserts nothing about time.

mod common;

use common::{bin, env_num, ms, repo};
use guest_installer::hypervisor::qemu::conlog::CappedLog;
use guest_installer::hypervisor::qemu::conserve;
use guest_installer::keystore::KeyStore;
use guest_installer::sshkey::{Fingerprint, PublicKey};
use guest_installer::state::{Phase, VmDir, VmState};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PRINCIPALS: usize = 1000;
const KEYS_EACH: usize = 5;
const KEYS_TARGET_MS: f64 = 50.0;
const RELAY_TARGET_MS: f64 = 5.0;
/// The account of (a), as the package makes it.
const KEYS_ACCOUNT: &str = "guest";
/// The account the door runs as in (b): one that exists everywhere.
const DOOR_ACCOUNT: &str = "nobody";

fn door_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_guest-installer-console"))
}

/// Median and 95th percentile, in ms.
fn pcts(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.95))
}

/// An ed25519 public key line whose 32 key bytes are `n`'s.
fn key_line(n: u64, comment: &str) -> String {
    use base64::Engine;
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(i as u32 * 7) >> (i % 8)) as u8 ^ i as u8;
    }
    raw[..8].copy_from_slice(&n.to_be_bytes());
    let mut blob = Vec::new();
    for f in [&b"ssh-ed25519"[..], &raw] {
        blob.extend_from_slice(&(f.len() as u32).to_be_bytes());
        blob.extend_from_slice(f);
    }
    format!("ssh-ed25519 {} {comment}", base64::engine::general_purpose::STANDARD.encode(blob))
}

/// A state dir and config as the package has them, plus the audit socket
/// (drained by a thread).
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    config: PathBuf,
}

fn setup(driver_extra: &str, account: &str) -> Setup {
    let dir = tempfile::Builder::new().prefix("gi-bench-console-").tempdir().unwrap();
    let root = dir.path().to_path_buf();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let state = root.join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let sock = root.join("syslog.sock");
    let syslog = UnixDatagram::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while syslog.recv(&mut buf).is_ok() {}
    });
    let preseed = root.join("preseed.cfg");
    fs::copy(repo().join("etc/preseed.cfg"), &preseed).unwrap();
    fs::set_permissions(&preseed, fs::Permissions::from_mode(0o644)).unwrap();
    let config = root.join("config.toml");
    fs::write(
        &config,
        format!(
            "state_dir = \"{state}\"\npreseed_template = \"{preseed}\"\nadmins = []\ndomain = \"example.org\"\n\
             [mirror]\nhost = \"deb.debian.org\"\ndirectory = \"/debian\"\n\
             [hypervisor]\n{driver_extra}\n[audit]\nsyslog_socket = \"{sock}\"\n\
             [console]\naccount = \"{account}\"\nsocket = \"{root}/console.sock\"\n",
            state = state.display(),
            preseed = preseed.display(),
            sock = sock.display(),
            root = root.display(),
        ),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    Setup { _dir: dir, root, state, config }
}

/// (a) `console-keys` over a store of 1,000 principals × 5 keys.
fn authorized_keys_command() {
    // The account sshd names need not exist for console-keys: it compares names.
    let s = setup("driver = \"xl\"", KEYS_ACCOUNT);
    let keys = s.state.join("keys");
    fs::create_dir(&keys).unwrap();
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o700)).unwrap();
    // What the store's size costs: the same request on an empty store first.
    let runs = env_num("GI_BENCH_RUNS", 200);
    let probe = PublicKey::parse_line(&key_line(u64::MAX - 1, "probe")).unwrap().fingerprint();
    let mut empty: Vec<f64> = (0..runs).map(|_| ms(console_keys(&s.config, &probe).1)).collect();
    let empty = pcts(&mut empty);
    let t = Instant::now();
    let mut first = None;
    let mut last = None;
    for p in 0..PRINCIPALS {
        let principal = format!("user{p:04}@EXAMPLE.ORG");
        let list: Vec<serde_json::Value> = (0..KEYS_EACH)
            .map(|k| {
                let key = PublicKey::parse_line(&key_line((p * KEYS_EACH + k) as u64, &format!("u{p}-k{k}"))).unwrap();
                if p == 0 && k == 0 {
                    first = Some(key.fingerprint());
                }
                last = Some(key.fingerprint());
                serde_json::json!({"fingerprint": key.fingerprint().to_string(), "line": key.line()})
            })
            .collect();
        let text = serde_json::to_vec_pretty(&serde_json::json!({"principal": principal, "keys": list})).unwrap();
        let f = keys.join(format!("{principal}.keys"));
        fs::write(&f, text).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (first, last) = (first.unwrap(), last.unwrap());
    // The store reads what was written: the format is the store's own.
    let found = KeyStore::new(&s.state).lookup(&last).expect("the key store reads the bench's files");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0.as_str(), format!("user{:04}@EXAMPLE.ORG", PRINCIPALS - 1));
    println!(
        "key store: {PRINCIPALS} principals x {KEYS_EACH} keys = {} keys, written in {:.1} s",
        PRINCIPALS * KEYS_EACH,
        t.elapsed().as_secs_f64()
    );
    let unknown = PublicKey::parse_line(&key_line(u64::MAX, "nobody")).unwrap().fingerprint();
    println!("console-keys guest FP, process start to exit ({} runs each; target {KEYS_TARGET_MS} ms):", runs);
    println!("  {:<30} median {:6.2} ms  p95 {:6.2} ms", "an empty key store", empty.0, empty.1);
    for (what, fp, want) in [("registered (first principal)", &first, true), ("registered (last principal)", &last, true), ("unknown key", &unknown, false)] {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let (out, d) = console_keys(&s.config, fp);
            assert_eq!(out.starts_with("restrict,pty,command=\"door "), want, "{out}");
            times.push(ms(d));
        }
        let (p50, p95) = pcts(&mut times);
        println!(
            "  {what:<30} median {p50:6.2} ms  p95 {p95:6.2} ms  ({:.2}x / {:.2}x the {KEYS_TARGET_MS} ms target)",
            p50 / KEYS_TARGET_MS,
            p95 / KEYS_TARGET_MS
        );
    }
}

fn console_keys(config: &Path, fp: &Fingerprint) -> (String, Duration) {
    let t = Instant::now();
    let o = Command::new(bin())
        .args(["console-keys", KEYS_ACCOUNT, fp.as_str()])
        .env_clear()
        .env("GUEST_INSTALLER_CONFIG", config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let d = t.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8(o.stdout).unwrap(), d)
}

/// One byte out, the same byte back, `n` times: the round trips in ms.
fn round_trips(w: &mut impl Write, r: &mut impl Read, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut b = [0u8; 1];
    for i in 0..n {
        // Printable, and never the detach key.
        let c = b'a' + (i % 26) as u8;
        let t = Instant::now();
        w.write_all(&[c]).unwrap();
        w.flush().unwrap();
        r.read_exact(&mut b).unwrap();
        out.push(ms(t.elapsed()));
        assert_eq!(b[0], c);
    }
    out
}

/// The guest: echoes what it reads on `s`.
fn echo(mut s: UnixStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
}

/// Reads from `r` until `what` has come.
fn read_until(r: &mut impl Read, what: &str) {
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains(what) {
        let n = r.read(&mut b).unwrap();
        assert!(n > 0, "closed before {what:?}: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
}

/// (b) A keystroke through the door, against a direct socket.
fn keystroke_round_trip() {
    let s = setup("driver = \"qemu\"", DOOR_ACCOUNT);
    let n = env_num("GI_BENCH_ROUND_TRIPS", 2000);
    let vm = "vm1";
    // A registered machine with an installed system (no guest: the echo).
    let disk = s.root.join("vm1.img");
    fs::File::create(&disk).unwrap().set_len(64 << 20).unwrap();
    let add = Command::new(bin())
        .args(["machine", "add", vm, "owner=bob@EXAMPLE.ORG", "ip=192.0.2.10", "netmask=255.255.255.0", "gateway=192.0.2.1"])
        .args(["nameserver=192.0.2.53", "mac=00:16:3e:00:00:01", &format!("disk={}", disk.display())])
        .env_clear()
        .env("GUEST_INSTALLER_CONFIG", &s.config)
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    let config = guest_installer::config::Config::load(&s.config).unwrap();
    let vmdir = VmDir::new(&config, &guest_installer::types::VmName::parse(vm).unwrap());
    fs::create_dir_all(&vmdir.dir).unwrap();
    let mut st = VmState::prepared(Some(guest_installer::types::ImageName::parse("bench").unwrap()), config.hypervisor.driver, None);
    st.phase = Phase::Installed;
    vmdir.save(&st).unwrap();
    // "Running": the supervisor holds the pidfile locked while it runs.
    let pidfile = fs::File::create(vmdir.pidfile()).unwrap();
    let _running = nix::fcntl::Flock::lock(pidfile, nix::fcntl::FlockArg::LockExclusive).unwrap();
    // The supervisor's console server on the machine's console socket,
    // the guest an echo on the serial line.
    let (serial_ours, serial_guest) = UnixStream::pair().unwrap();
    echo(serial_guest);
    let console_sock = guest_installer::hypervisor::qemu::Qemu::console_socket(&vmdir);
    let listener = UnixListener::bind(&console_sock).unwrap();
    let mut log = CappedLog::create(&vmdir.console_log(), 16 << 20).unwrap();
    std::thread::spawn(move || drop(conserve::run(serial_ours, &mut log, Some(listener))));

    // direct: a socket straight to an echo.
    let (mut a, b) = UnixStream::pair().unwrap();
    echo(b);
    let mut direct = round_trips(&mut a.try_clone().unwrap(), &mut a, n);
    drop(a);
    // supervisor: the console socket console-serve would use.
    let mut c = UnixStream::connect(&console_sock).unwrap();
    let mut supervisor = round_trips(&mut c.try_clone().unwrap(), &mut c, n);
    drop(c);
    std::thread::sleep(Duration::from_millis(100));

    // door: the real door as the account, the real console-serve as root.
    let door_sock = s.root.join("console.sock");
    let l = UnixListener::bind(&door_sock).unwrap();
    fs::set_permissions(&door_sock, fs::Permissions::from_mode(0o666)).unwrap();
    let nobody = nix::unistd::User::from_name(DOOR_ACCOUNT).unwrap().expect("user nobody");
    let mut door = Command::new(door_bin())
        .arg("-c")
        .arg(format!("door bob@EXAMPLE.ORG {}", door_sock.display()))
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", format!("console {vm}"))
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (conn, _) = l.accept().unwrap();
    let conn: OwnedFd = conn.into();
    let serve = Command::new(bin())
        .arg("console-serve")
        .env_clear()
        .env("GUEST_INSTALLER_CONFIG", &s.config)
        .stdin(Stdio::from(conn.try_clone().unwrap()))
        .stdout(Stdio::from(conn))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut din = door.stdin.take().unwrap();
    let mut dout = door.stdout.take().unwrap();
    read_until(&mut dout, "Ctrl-] detaches]\r\n");
    let mut through = round_trips(&mut din, &mut dout, n);
    din.write_all(&[0x1d]).unwrap();
    let status = door.wait().unwrap();
    let mut serve = serve;
    let served = serve.wait().unwrap();
    assert!(status.success() && served.success(), "door {status}, console-serve {served}");
    let _ = dout.as_raw_fd();

    println!("keystroke round trip, one byte out and back ({n} each; target: the door adds at most {RELAY_TARGET_MS} ms):");
    let (d50, d95) = pcts(&mut direct);
    let (s50, s95) = pcts(&mut supervisor);
    let (t50, t95) = pcts(&mut through);
    println!("  direct socket to the echo        median {d50:7.3} ms  p95 {d95:7.3} ms");
    println!("  the supervisor's console socket  median {s50:7.3} ms  p95 {s95:7.3} ms");
    println!("  door -> console-serve -> console median {t50:7.3} ms  p95 {t95:7.3} ms");
    println!(
        "  added by the door over the direct socket: median {:.3} ms, p95 {:.3} ms ({:.3}x / {:.3}x the {RELAY_TARGET_MS} ms target)",
        t50 - d50,
        t95 - d95,
        (t50 - d50) / RELAY_TARGET_MS,
        (t95 - d95) / RELAY_TARGET_MS
    );
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the console bench runs console-serve and the door as another user; it needs root");
        return;
    }
    authorized_keys_command();
    keystroke_round_trip();
}
