//! The device model runs without root, and a guest cannot fill the host
//! through its console.
//!
//! qemu guests (TCG here) of the busybox fake installer
//! (tests/support/iso/make-busybox-installer), booted by our binary with
//! the qemu driver: qemu's uid, seccomp mode and the supervisor's
//! capabilities are read from /proc while the guest runs; `--flood` makes
//! a guest that prints without end. The xl driver's device model user is
//! checked with Xen's own config parser.
//!
//! Needs (scripts/setup.sh): the system user guest-installer-qemu, and
//! what tests/boot.rs needs.

mod common;

use common::*;
use std::ffi::OsStr;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";
const SUPERVISOR: &str = "guest-installer-qemu-supervisor";
const MARKER: &str = "[guest-installer: console output dropped here to keep this log under its size limit]";
/// A guest that prints without end does not get this far in this long: hung.
const FLOOD_BOUND: Duration = Duration::from_secs(900);

/// Adds `lines` to the config's `[hypervisor]` section.
fn hypervisor_keys(env: &Env, lines: &str) {
    let text = fs::read_to_string(&env.config).unwrap();
    assert!(text.contains("[hypervisor]\n"));
    fs::write(&env.config, text.replacen("[hypervisor]\n", &format!("[hypervisor]\n{lines}\n"), 1)).unwrap();
}

/// A `Name:\tvalue` line of /proc/PID/status.
fn proc_status(pid: i32, key: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap_or_else(|| panic!("no {key} in\n{s}"));
    line[key.len() + 1..].trim().to_owned()
}

/// The group every guest's qemu runs with: `qemu_user`'s.
fn qemu_gid() -> u32 {
    nix::unistd::User::from_name("guest-installer-qemu")
        .unwrap()
        .expect("user guest-installer-qemu (scripts/setup.sh creates it)")
        .gid
        .as_raw()
}

/// The uids guests run as by default (`hypervisor.qemu_uids`).
const UID_BASE: u32 = guest_installer::config::DEFAULT_QEMU_UID_BASE;

/// The real uid of a process, from `Uid:` (real, effective, saved, fs:
/// all the same for qemu).
fn uid_of(pid: i32) -> u32 {
    let all: Vec<u32> = proc_status(pid, "Uid").split('\t').map(|u| u.parse().unwrap()).collect();
    assert!(all.iter().all(|u| *u == all[0]), "{all:?}");
    all[0]
}

/// Processes whose argv[0] is the supervisor's.
fn supervisors() -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.split(|b| *b == 0).next() == Some(SUPERVISOR.as_bytes()))
        })
        .collect()
}

/// Gone, or a zombie (it has exited; reaping it is init's business, and
/// this machine's init is slow at it).
fn exited(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z"),
    }
}

fn flood_env(extra: &str) -> Env {
    let env = Env::new();
    env.use_qemu();
    hypervisor_keys(&env, extra);
    env.import_busybox_installer(&[OsStr::new("--flood")]);
    env
}

#[test]
fn qemu_runs_unprivileged_in_its_sandbox_and_a_flooding_guest_leaves_a_capped_log() {
    let env = flood_env("console_log_max_mib = 1");
    env.machine("flood1", 3, Some("fake"));
    let guest = Guest::new(&env, "flood1");
    let j = env.run(As::Remote(OWNER), &["install", "flood1", "hostname=gi-flood", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing", "{j}");
    let pid = guest.pid().expect("qemu runs");

    // qemu: a uid of its own from the range, qemu_user's group, seccomp
    // filter mode, no way back to privilege.
    let uid = uid_of(pid);
    assert!((UID_BASE + 1..=UID_BASE + 4096).contains(&uid), "uid {uid}");
    assert_eq!(proc_status(pid, "Gid").split('\t').next(), Some(qemu_gid().to_string().as_str()));
    assert_eq!(fs::read_to_string(env.vm_file("flood1", "qemu.uid")).unwrap(), format!("{uid}\n"));
    assert_eq!(proc_status(pid, "Seccomp"), "2");
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000000");
    // It was given its files open: nothing of ours is readable to it by
    // name (the state dir is root's, mode 0700).
    let vmdir = env.state.join("vms/flood1");
    for p in [env.state.clone(), vmdir.clone()] {
        let mode = fs::metadata(&p).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0, "{} open to others", p.display());
    }
    let cfg = fs::read_to_string(env.vm_file("flood1", "domain.cfg")).unwrap();
    assert!(cfg.lines().any(|l| l == "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"), "{cfg}");
    assert!(!cfg.lines().any(|l| l == "-daemonize" || l.starts_with("-run")), "{cfg}");

    // Its parent, the supervisor: uid 0 without any capability.
    let sup: i32 = proc_status(pid, "PPid").parse().unwrap();
    assert!(supervisors().contains(&sup), "qemu's parent {sup} is not the supervisor");
    assert_eq!(proc_status(sup, "Uid").split('\t').next(), Some("0"));
    assert_eq!(proc_status(sup, "CapEff"), "0000000000000000");
    assert_eq!(proc_status(sup, "CapBnd"), "0000000000000000");
    assert_eq!(proc_status(sup, "NoNewPrivs"), "1");

    // The guest prints without end; the log never passes 1 MiB and keeps
    // its start and its latest output.
    let log = env.vm_file("flood1", "console.log");
    let start = Instant::now();
    let mut biggest = 0;
    let last = loop {
        let len = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        biggest = biggest.max(len);
        assert!(len <= 1 << 20, "console log at {len} bytes");
        let c = console(&env, "flood1");
        let last = c
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("GI-FAKE-INSTALLER: flood ")?.split(' ').next()?.parse::<u64>().ok());
        // ~110 bytes a line: 20000 lines are twice the cap.
        if last.is_some_and(|n| n >= 20_000) {
            break last.unwrap();
        }
        assert!(start.elapsed() < FLOOD_BOUND, "the guest printed only up to {last:?}: {}", readable_tail(&c, 5));
        assert!(guest.qemu_alive(), "the guest stopped: {}", readable_tail(&c, 20));
        std::thread::sleep(Duration::from_millis(500));
    };
    let c = console(&env, "flood1");
    eprintln!("flood: {last} lines printed, log {} bytes (largest seen {biggest})", c.len());
    let head = &c[..c.find(MARKER).unwrap_or_else(|| panic!("no marker in the log"))];
    assert!(head.contains("GI-FAKE-INSTALLER: booted"), "the start is gone");
    assert!(head.contains("GI-FAKE-INSTALLER: preseed hostname=gi-flood"), "the start is gone");
    assert_eq!(c.matches(MARKER).count(), 1);
    assert!(!head.contains("flood 19999 "), "the log's start reaches the latest output");

    // status reads the progress and the latest line from the capped log.
    let s = env.run(As::Remote(OWNER), &["status", "flood1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "installing", "{s}");
    assert_eq!(s["progress"], "installing base system", "{s}");
    let tail = s["console_tail"].as_str().unwrap_or_else(|| panic!("{s}"));
    // The guest goes on printing: the last line may be half written.
    const FLOOD: &str = "GI-FAKE-INSTALLER: flood ";
    assert!(!tail.is_empty() && (tail.starts_with(FLOOD) || FLOOD.starts_with(tail)), "{tail:?}");
    let n = tail.strip_prefix(FLOOD).and_then(|t| t.split(' ').next()?.parse::<u64>().ok());
    assert!(n.is_none_or(|n| n >= last), "console_tail is not the latest output: {tail:?}");

    // Cancel: qemu and its supervisor are gone, nothing left running.
    let out = env.run(As::Remote(OWNER), &["cancel", "flood1", "--json"], b"").ok().json();
    assert_eq!(out["state"], "cancelled");
    assert!(!guest.qemu_alive());
    assert!(exited(sup), "the supervisor outlived qemu");
    assert!(!env.vm_file("flood1", "qemu.pid").exists());
    assert!(fs::metadata(&log).unwrap().len() <= 1 << 20);
    let leftovers: Vec<_> = fs::read_dir(&vmdir).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_missing_qemu_user_fails_the_install_and_starts_nothing() {
    let env = Env::new();
    env.use_qemu();
    hypervisor_keys(&env, "qemu_user = \"gi-no-such-user\"");
    env.import("bookworm", false);
    env.machine("nouser1", 4, Some("bookworm"));
    let _guest = Guest::new(&env, "nouser1"); // a regression that starts one is still stopped
    let out = env.run(As::Remote(OWNER), &["--json", "install", "nouser1"], PW_HASH.as_bytes());
    assert_eq!(out.code, 1, "{out:?}");
    let msg = out.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("gi-no-such-user") && msg.contains("does not exist"), "{msg}");
    assert!(!env.vm_file("nouser1", "install.qcow2").exists(), "media left behind");
    assert!(!env.vm_file("nouser1", "qemu.pid").exists());
    let s = env.run(As::Remote(OWNER), &["status", "nouser1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "failed", "{s}");
    let pgrep = Command::new("pgrep").args(["-f", "process=gi-nouser1"]).output().unwrap();
    assert!(pgrep.stdout.is_empty(), "a qemu runs");

    // Root is refused as the qemu user too.
    let env = Env::new();
    env.use_qemu();
    hypervisor_keys(&env, "qemu_user = \"root\"");
    env.import("bookworm", false);
    env.machine("nouser2", 5, Some("bookworm"));
    let _guest = Guest::new(&env, "nouser2");
    let out = env.run(As::Remote(OWNER), &["--json", "install", "nouser2"], PW_HASH.as_bytes());
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.json()["error"]["message"].as_str().unwrap().contains("is root"), "{out:?}");
}

#[test]
fn the_supervisor_refuses_to_run_for_anyone_but_root_without_a_caller() {
    // Our binary under the supervisor's name, as a remote caller would
    // reach it if remctld could be made to (it cannot set argv[0]).
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join(SUPERVISOR);
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let o = Command::new(&link).arg0(SUPERVISOR).env("REMOTE_USER", OWNER).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = Command::new(&link).arg0(SUPERVISOR).uid(65534).gid(65534).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    // Garbage on stdin: nothing started.
    let o = Command::new(&link).arg0(SUPERVISOR).stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

use std::os::unix::process::CommandExt;

/// A bridge for the test, deleted on drop.
struct TestBridge(String);
impl TestBridge {
    fn new() -> TestBridge {
        let name = format!("gibr{}", std::process::id() % 100_000);
        sh(Command::new("ip").args(["link", "add", &name, "type", "bridge"]));
        TestBridge(name)
    }
    fn ports(&self) -> Vec<String> {
        fs::read_dir(format!("/sys/class/net/{}/brif", self.0))
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default()
    }
}
impl Drop for TestBridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
fn bridged_guests_get_a_tap_in_the_bridge_that_goes_with_them() {
    let br = TestBridge::new();
    let env = flood_env("");
    // use_qemu chose user networking: the test's bridge instead.
    env.use_qemu_on_bridge(&br.0);
    env.machine("br1", 6, Some("fake"));
    let guest = Guest::new(&env, "br1");
    // A bridge that does not exist: the error names the config key.
    let text = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, text.replace(&format!("bridge = \"{}\"", br.0), "bridge = \"gi-nosuchbr\"")).unwrap();
    let o = env.run(As::Remote(OWNER), &["install", "br1", "--json"], PW_HASH.as_bytes());
    assert_eq!(o.code, 1, "{o:?}");
    let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("bridge gi-nosuchbr") && msg.contains("hypervisor.bridge"), "{msg}");
    assert!(!guest.qemu_alive());
    fs::write(&env.config, text).unwrap();
    let j = env.run(As::Remote(OWNER), &["install", "br1", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing", "{j}");
    let ports = br.ports();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert!(ports[0].starts_with("gi-tap"), "{ports:?}");
    let mac = fs::read_to_string(format!("/sys/class/net/{}/address", ports[0])).unwrap();
    assert_eq!(mac.trim(), "fe:16:3e:00:00:06", "the tap's address is the guest's with 0xfe first");
    assert!(uid_of(guest.pid().unwrap()) > UID_BASE);
    env.run(As::Remote(OWNER), &["cancel", "br1"], b"").ok();
    assert!(!guest.qemu_alive());
    assert!(br.ports().is_empty(), "the tap outlived the guest: {:?}", br.ports());
}

#[test]
fn xl_device_model_user_is_written_and_accepted_by_xens_parser() {
    // By default: Xen's shared device-model user (setup.sh makes it, as the
    // package's postinst does).
    let env = Env::new();
    env.import("bookworm", false);
    for (vm, n, extra) in [("xlhvm", 7, None), ("xlpv", 8, Some("boot=pv-initrd"))] {
        env.machine_with(vm, n, Some("bookworm"), extra.as_slice());
        env.run(As::Remote(OWNER), &["install", vm, "--no-start"], PW_HASH.as_bytes()).ok();
        let cfg = env.vm_file(vm, "domain.cfg");
        let text = fs::read_to_string(&cfg).unwrap();
        assert!(text.contains("\ndevice_model_user = \"xen-qemuuser-shared\"\ndm_restrict = 1\n"), "{text}");
        let json = check_xl_config(&cfg);
        assert!(json.contains("\"device_model_user\": \"xen-qemuuser-shared\""), "{vm}: {json}");
        assert!(json.contains("\"dm_restrict\": \"True\""), "{vm}: {json}");
    }
    // A user that does not exist: Xen would run the emulator as root, so
    // nothing is started, and the message says how to fix it.
    let env = Env::new();
    hypervisor_keys(&env, "device_model_user = \"gi-no-such-user\"");
    env.import("bookworm", false);
    env.machine("xlnouser", 9, Some("bookworm"));
    let o = env.run(As::Remote(OWNER), &["install", "xlnouser", "--json"], PW_HASH.as_bytes());
    assert_eq!(o.code, 1, "{o:?}");
    let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("gi-no-such-user does not exist") && msg.contains("device_model_root = true"), "{msg}");
    assert!(!env.xl_running("xlnouser"));
    // Root only when the admin says so: neither key.
    let env = Env::new();
    hypervisor_keys(&env, "device_model_root = true");
    env.import("bookworm", false);
    env.machine("xlplain", 9, Some("bookworm"));
    env.run(As::Remote(OWNER), &["install", "xlplain", "--no-start"], PW_HASH.as_bytes()).ok();
    let text = fs::read_to_string(env.vm_file("xlplain", "domain.cfg")).unwrap();
    assert!(!text.contains("device_model_user") && !text.contains("dm_restrict"), "{text}");
}

/// Two guests at once run as two uids: neither qemu can open the other's
/// descriptors through /proc (with one shared uid, a guest that escaped
/// into its qemu could read a sibling's kernel and initrd, an installer's
/// preseed and root hash among them), and the in-memory boot files qemu
/// is handed are sealed against any change: two installers booted from
/// the image's kernel and a per-VM initrd (`boot=pv-initrd`), probed as
/// soon as qemu runs. A clone of the golden template, the third guest,
/// has a uid of its own too, and is handed no boot file at all (it boots
/// the boot code in its own disk).
#[test]
fn every_guest_runs_as_a_uid_of_its_own_with_sealed_boot_files() {
    let env = Env::new();
    env.use_qemu();
    env.import_busybox_installer(&[]);
    common::golden::add_template(&env);
    let mut guests = Vec::new();
    for (vm, n) in [("uida", 11), ("uidb", 12)] {
        env.machine_with(vm, n, Some("fake"), &["boot=pv-initrd"]);
        guests.push(Guest::new(&env, vm));
        env.run(As::Remote(OWNER), &["install", vm, "--json"], PW_HASH.as_bytes()).ok();
    }
    let vol = env.volume_qcow2("uidc");
    env.machine_with("uidc", 13, None, &[&format!("disk={}", vol.display())]);
    let clone = Guest::new(&env, "uidc");
    env.run(As::Remote(OWNER), &["install", "uidc", "template=tpl", "--json"], PW_HASH.as_bytes()).ok();
    let clone_pid = clone.pid().expect("the clone's qemu runs");
    let boot_files = |pid: i32| -> Vec<String> {
        fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten().filter_map(|e| fs::read_link(e.path()).ok()).map(|t| t.display().to_string()).filter(|t| t.contains("gi-boot-file")).collect()
    };
    assert_eq!(boot_files(clone_pid), Vec::<String>::new(), "the clone was handed a boot file");
    let pids: Vec<i32> = guests.iter().map(|g| g.pid().expect("qemu runs")).collect();
    for p in &pids {
        assert_eq!(boot_files(*p).len(), 2, "an installer's kernel and initrd: {:?}", boot_files(*p));
    }
    let uids: Vec<u32> = pids.iter().map(|p| uid_of(*p)).collect();
    assert_ne!(uids[0], uids[1], "two guests share uid {}", uids[0]);
    assert!(!uids.contains(&uid_of(clone_pid)), "the clone shares a uid with an installer");
    for u in uids.iter().chain([uid_of(clone_pid)].iter()) {
        assert!((UID_BASE + 1..=UID_BASE + 4096).contains(u), "uid {u} is not from the range");
    }
    // FD_KERNEL (14): the image's kernel, an in-memory copy.
    let kernel_fd = |pid: i32| format!("/proc/{pid}/fd/14");
    let as_uid = |uid: u32, path: &str| {
        Command::new("setpriv")
            .args(["--reuid", &uid.to_string(), "--regid", &qemu_gid().to_string(), "--clear-groups", "--", "head", "-c", "1", path])
            .stdout(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for (me, other) in [(0, 1), (1, 0)] {
        let theirs = as_uid(uids[me], &kernel_fd(pids[other]));
        assert!(!theirs.status.success(), "uid {} opened {}", uids[me], kernel_fd(pids[other]));
        assert!(String::from_utf8_lossy(&theirs.stderr).contains("Permission denied"), "{theirs:?}");
        // The same probe reaches the guest's own (so the refusal above is
        // the uid's doing, not the probe's).
        let own = as_uid(uids[me], &kernel_fd(pids[me]));
        assert!(own.status.success(), "uid {} could not open its own qemu's {}: {own:?}", uids[me], kernel_fd(pids[me]));
    }
    for pid in &pids {
        let f = fs::File::open(kernel_fd(*pid)).unwrap();
        // SAFETY: fcntl on a descriptor we own.
        let seals = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_GET_SEALS) };
        let want = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
        assert_eq!(seals & want, want, "seals {seals:#x} of {}", kernel_fd(*pid));
        // And a write through the descriptor is refused.
        let w = fs::OpenOptions::new().write(true).open(kernel_fd(*pid)).and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(w.is_err(), "wrote into a sealed boot file");
    }
    guests.push(clone);
    for g in &guests {
        env.run(As::Remote(OWNER), &["cancel", &g.vm], b"").ok();
        assert!(!g.qemu_alive());
    }
}
