//! The Debian package, for real: build it with dpkg-buildpackage (in a copy
//! of the source tree), lint it, install it on this machine with apt-get,
//! check what landed where, drive the installed program through the
//! installed remctl drop-in in a throwaway realm, purge it and check that
//! nothing is left. The machine is restored even if a step fails.
//!
//! Needs root (it installs a package); skipped with a message otherwise.
//! Packages: debhelper devscripts lintian fakeroot build-essential, plus
//! those of tests/remctl.rs, and a Rust toolchain on PATH (README.source).

mod common;

use common::realm::{run_bounded, Realm};
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PKG: &str = "guest-installer";
/// The Ganeti OS definition, built from the same source.
const GANETI_PKG: &str = "guest-installer-ganeti";
const PASSWORD: &str = "correct horse battery staple";
const BOB: &str = "bob@EXAMPLE.ORG";
const MALLORY: &str = "mallory@EXAMPLE.ORG";

/// Everything the package puts on the machine (or makes in postinst).
const PATHS: &[&str] = &[
    "/usr/sbin/guest-installer",
    "/etc/guest-installer",
    "/etc/remctl/conf.d/guest-installer",
    "/etc/remctl/acl/guest-installer-admins",
    "/var/lib/guest-installer",
    "/usr/share/doc/guest-installer",
    "/usr/share/man/man8/guest-installer.8.gz",
    "/lib/systemd/system/guest-installer-settle.service",
    "/lib/systemd/system/guest-installer-settle.timer",
    "/etc/systemd/system/timers.target.wants/guest-installer-settle.timer",
    "/usr/share/ganeti/os/guest-installer",
    "/usr/share/doc/guest-installer-ganeti",
    // The console door.
    "/usr/sbin/guest-installer-console",
    "/usr/share/guest-installer",
    "/usr/share/man/man8/guest-installer-console.8.gz",
    "/lib/systemd/system/guest-installer-console.socket",
    "/lib/systemd/system/guest-installer-console@.service",
    "/etc/systemd/system/sockets.target.wants/guest-installer-console.socket",
];

fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env("DEBIAN_FRONTEND", "noninteractive").env("LC_ALL", "C.UTF-8");
    c
}

fn must(c: Command, limit: Duration) -> Out {
    let desc = format!("{c:?}");
    let out = run_bounded(c, b"", limit);
    assert_eq!(out.code, 0, "{desc} failed:\n{}\n{}", out.stdout, out.stderr);
    out
}

/// Installed packages: "name:arch version" lines.
fn installed_packages() -> BTreeSet<String> {
    let out = must(cmd("dpkg-query", &["-W", "-f", "${db:Status-Abbrev} ${binary:Package} ${Version}\\n"]), Duration::from_secs(60));
    out.stdout.lines().filter(|l| !l.starts_with("un ") && !l.starts_with("pn ")).map(str::to_owned).collect()
}

fn qemu_user_exists() -> bool {
    cmd("getent", &["passwd", "guest-installer-qemu"]).output().unwrap().status.success()
}

/// The console door's account.
fn console_user_exists() -> bool {
    cmd("getent", &["passwd", "guest"]).output().unwrap().status.success()
}

fn package_state(name: &str) -> String {
    let out = run_bounded(cmd("dpkg-query", &["-W", "-f", "${db:Status-Status}", name]), b"", Duration::from_secs(60));
    if out.code == 0 { out.stdout.trim().to_owned() } else { "not-installed".into() }
}

fn apt_get(args: &[&str]) -> Command {
    let mut c = cmd("apt-get", &["-y", "-q", "-o", "DPkg::Lock::Timeout=300"]);
    c.args(args);
    c
}

/// Puts the machine back as it was: our package purged, any package the
/// test pulled in purged, nothing of ours left. Runs on drop, so also when
/// an assertion fails halfway.
struct Restore {
    packages_before: BTreeSet<String>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        for pkg in [GANETI_PKG, PKG] {
            if package_state(pkg) != "not-installed" {
                let out = run_bounded(apt_get(&["purge", pkg]), b"", Duration::from_secs(600));
                if out.code != 0 {
                    problems.push(format!("apt-get purge {pkg}: {}", out.stderr));
                }
            }
        }
        let new: Vec<String> = installed_packages()
            .difference(&self.packages_before)
            .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
            .collect();
        if !new.is_empty() {
            let mut args = vec!["purge"];
            args.extend(new.iter().map(String::as_str));
            let out = run_bounded(apt_get(&args), b"", Duration::from_secs(600));
            if out.code != 0 {
                problems.push(format!("apt-get purge {new:?}: {}", out.stderr));
            }
        }
        for p in PATHS {
            // None of them existed before the test (checked), so whatever
            // is there now is ours.
            let p = Path::new(p);
            if p.is_dir() {
                let _ = fs::remove_dir_all(p);
            } else if p.symlink_metadata().is_ok() {
                let _ = fs::remove_file(p);
            }
        }
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("could not restore the machine: {problems:?}");
        }
    }
}

/// One package test on the machine at a time (it installs system-wide).
fn machine_lock() -> nix::fcntl::Flock<fs::File> {
    let f = fs::File::create("/run/lock/guest-installer-package-test.lock")
        .or_else(|_| fs::File::create("/tmp/guest-installer-package-test.lock"))
        .unwrap();
    let mut f = Some(f);
    let t = Instant::now();
    loop {
        match nix::fcntl::Flock::lock(f.take().unwrap(), nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => return l,
            Err((back, _)) => {
                assert!(t.elapsed() < Duration::from_secs(900), "another package test held the machine for 15 minutes");
                f = Some(back);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// A copy of the source tree as git sees it (tracked and untracked files,
/// not the ignored ones such as target/).
fn copy_source_tree(dest: &Path) {
    let out = must(cmd("git", &["-C", repo().to_str().unwrap(), "ls-files", "-z", "-c", "-o", "--exclude-standard"]), Duration::from_secs(60));
    let mut n = 0;
    for rel in out.stdout.split('\0').filter(|s| !s.is_empty()) {
        let src = repo().join(rel);
        if !src.is_file() {
            continue; // deleted in the work tree
        }
        let to = dest.join(rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(&src, &to).unwrap();
        n += 1;
    }
    assert!(n > 10 && dest.join("debian/rules").exists(), "copied only {n} files");
}

/// Files whose names contain ours, where a package could leave them.
fn files_named_like_us() -> String {
    must(
        cmd("find", &["/etc", "/usr", "/var/lib", "/var/cache/apt", "/var/log", "/run", "-xdev", "-name", "*guest-installer*"]),
        Duration::from_secs(120),
    )
    .stdout
}

fn mode_owner(p: &str) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn debian_package_builds_lints_installs_serves_remctl_and_purges() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the package test installs a package on this machine and needs root");
        return;
    }
    let _machine = machine_lock();
    let qemu_user_before = qemu_user_exists();
    let console_user_before = console_user_exists();
    for pkg in [PKG, GANETI_PKG] {
        assert_eq!(package_state(pkg), "not-installed", "{pkg} is installed on this machine; this test installs and purges it");
    }
    for p in PATHS {
        assert!(Path::new(p).symlink_metadata().is_err(), "{p} exists before the test; the test would remove it: move it away");
    }
    let remctl_before = snapshot(Path::new("/etc/remctl"));
    let files_before = files_named_like_us();
    let _restore = Restore { packages_before: installed_packages() };

    // ------------------------------------------------------------ build
    // The package ships the README (debian/guest-installer.docs).
    assert!(repo().join("README.md").is_file(), "README.md is missing: the package installs it as its documentation");
    let work = tempfile::Builder::new().prefix("gi-package-").tempdir().unwrap();
    let src = work.path().join("guest-installer");
    copy_source_tree(&src);
    let t = Instant::now();
    let mut c = cmd("dpkg-buildpackage", &["-us", "-uc", "-b"]);
    // Compiled crates are kept between runs; the checkout's target/ is not touched.
    c.current_dir(&src).env("CARGO_TARGET_DIR", cache_dir().join("package-target")).env("DEB_BUILD_OPTIONS", "parallel=2");
    let build = run_bounded(c, b"", Duration::from_secs(1200));
    if build.code != 0 {
        let log = format!("{}{}", build.stdout, build.stderr);
        let tail: Vec<&str> = log.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("dpkg-buildpackage failed (exit {}); the end of its output:\n{}", build.code, tail.join("\n"));
    }
    println!("dpkg-buildpackage -us -uc -b: {:.1} s", t.elapsed().as_secs_f64());
    let version = must(cmd("dpkg-parsechangelog", &["-l", src.join("debian/changelog").to_str().unwrap(), "-S", "Version"]), Duration::from_secs(30))
        .stdout
        .trim()
        .to_owned();
    let arch = must(cmd("dpkg", &["--print-architecture"]), Duration::from_secs(30)).stdout.trim().to_owned();
    let deb_name = format!("{PKG}_{version}_{arch}.deb");
    let debs: Vec<String> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".deb"))
        .collect();
    let ganeti_deb = format!("{GANETI_PKG}_{version}_all.deb");
    let mut want = vec![deb_name.clone(), ganeti_deb.clone()];
    want.sort();
    let mut debs = debs;
    debs.sort();
    assert_eq!(debs, want, "the program's package and the Ganeti OS definition");
    check_ganeti_deb(&work.path().join(&ganeti_deb));
    let changes = work.path().join(format!("{PKG}_{version}_{arch}.changes"));

    // ------------------------------------------------------------ lintian
    let lint = run_bounded(
        cmd("lintian", &["--fail-on", "error,warning", "--display-level", ">=info", "--show-overrides", changes.to_str().unwrap()]),
        b"",
        Duration::from_secs(300),
    );
    println!("lintian:\n{}", lint.stdout);
    let bad: Vec<&str> = lint.stdout.lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).collect();
    assert!(bad.is_empty() && lint.code == 0, "lintian: {bad:?}\n{}", lint.stderr);

    // ------------------------------------------------------------ realm
    // The realm's remctld reads the machine's own conf.d, where the package
    // puts its drop-in, and passes GUEST_INSTALLER_CONFIG to the program,
    // so the test's state dir and xl stand-in are used, not the machine's.
    let env = Env::new();
    let realm_dir = env.root().join("realm");
    fs::create_dir(&realm_dir).unwrap();
    let realm = Realm::up(
        &realm_dir,
        &["--include", "/etc/remctl/conf.d", "--setenv", &format!("GUEST_INSTALLER_CONFIG={}", env.config.display())],
        &["bob", "mallory", "alice/admin"],
    );
    let drain = || {
        let _ = env.audit(); // a datagram socket holds only a few records
    };
    let out = realm.remctl(BOB, &["guest", "list"]);
    assert_eq!((out.code, out.stderr.as_str()), (255, "Unknown command\n"), "before installing: {out:?}");

    // ------------------------------------------------------------ install
    let mut c = apt_get(&["install", "--no-install-recommends", &format!("./{deb_name}")]);
    c.current_dir(work.path());
    must(c, Duration::from_secs(600));
    assert_eq!(package_state(PKG), "installed");

    // Owners and modes: everything root's; the state private.
    let root = |mode: u32| (mode, 0, 0);
    let by_mode: [(u32, &[&str]); 3] = [
        (0o755, &["/usr/sbin/guest-installer", "/etc/guest-installer", "/usr/sbin/guest-installer-console"]),
        (
            0o644,
            &[
                "/etc/guest-installer/config.toml",
                "/etc/guest-installer/preseed.cfg",
                "/etc/remctl/conf.d/guest-installer",
                "/etc/remctl/acl/guest-installer-admins",
                "/usr/share/man/man8/guest-installer.8.gz",
                "/usr/share/man/man8/guest-installer-console.8.gz",
                "/usr/share/doc/guest-installer/copyright",
                "/usr/share/guest-installer/sshd-console.conf",
                "/lib/systemd/system/guest-installer-console.socket",
                "/lib/systemd/system/guest-installer-console@.service",
                // Read by web panels' programs: installed as it is, not gzipped.
                "/usr/share/doc/guest-installer/reply.schema.json",
            ],
        ),
        (0o700, &["/var/lib/guest-installer", "/var/lib/guest-installer/images", "/var/lib/guest-installer/machines", "/var/lib/guest-installer/vms", "/var/lib/guest-installer/locks"]),
    ];
    for (mode, paths) in by_mode {
        for p in paths {
            assert_eq!(mode_owner(p), root(mode), "{p}: (mode, uid, gid)");
        }
    }
    // dh_compress gzips a README of 4 kB or more.
    let readme = ["/usr/share/doc/guest-installer/README.md", "/usr/share/doc/guest-installer/README.md.gz"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("the README is installed");
    assert_eq!(mode_owner(readme), root(0o644), "{readme}");
    // The files are ours, unchanged.
    for (installed, ours) in [
        ("/etc/remctl/conf.d/guest-installer", "remctl.d/guest-installer"),
        ("/etc/remctl/acl/guest-installer-admins", "remctl.d/acl/guest-installer-admins"),
        ("/etc/guest-installer/config.toml", "etc/config.toml"),
        ("/etc/guest-installer/preseed.cfg", "etc/preseed.cfg"),
        ("/usr/share/doc/guest-installer/reply.schema.json", "doc/reply.schema.json"),
        ("/usr/share/guest-installer/sshd-console.conf", "etc/sshd/guest-installer-console.conf"),
    ] {
        assert!(fs::read(installed).unwrap() == fs::read(repo().join(ours)).unwrap(), "{installed} differs from {ours}");
    }
    let conffiles = must(cmd("dpkg-query", &["-W", "-f", "${Conffiles}", PKG]), Duration::from_secs(30)).stdout;
    let conffiles: BTreeSet<&str> = conffiles.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(
        conffiles,
        BTreeSet::from([
            "/etc/guest-installer/config.toml",
            "/etc/guest-installer/preseed.cfg",
            "/etc/remctl/acl/guest-installer-admins",
            "/etc/remctl/conf.d/guest-installer",
        ])
    );
    // The man pages render without warnings (as lintian checks them).
    for page in ["/usr/share/man/man8/guest-installer.8.gz", "/usr/share/man/man8/guest-installer-console.8.gz"] {
        let man = must(cmd("man", &["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", page]), Duration::from_secs(60));
        assert!(man.stderr.is_empty() && !man.stdout.is_empty(), "man {page}: {}", man.stderr);
    }
    check_console_door(console_user_before);

    // The installed program with the installed default config, locally as root.
    let installed = |args: &[&str], config: Option<&Path>| -> Out {
        let mut c = Command::new("/usr/sbin/guest-installer");
        c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").args(args);
        if let Some(cfg) = config {
            c.env("GUEST_INSTALLER_CONFIG", cfg);
        }
        let out = run_bounded(c, b"", Duration::from_secs(120)).of_request(args);
        drain();
        out
    };
    // The user qemu runs as: a system user without shell or home.
    let pw = must(cmd("getent", &["passwd", "guest-installer-qemu"]), Duration::from_secs(10)).stdout;
    assert!(pw.trim_end().ends_with(":/nonexistent:/usr/sbin/nologin"), "{pw}");
    let j = installed(&["images", "--json"], None).ok().json();
    assert_eq!(j["images"], serde_json::json!([]), "{j}");
    let j = installed(&["list", "--json"], None).ok().json();
    assert_eq!(j["machines"], serde_json::json!([]), "{j}");

    // The timer that settles every machine each minute is enabled, its
    // units are valid, and what its service runs works.
    let wants = Path::new("/etc/systemd/system/timers.target.wants/guest-installer-settle.timer");
    assert!(wants.symlink_metadata().is_ok(), "the settle timer is not enabled");
    let verify = must(
        cmd(
            "systemd-analyze",
            &["verify", "/lib/systemd/system/guest-installer-settle.timer", "/lib/systemd/system/guest-installer-settle.service"],
        ),
        Duration::from_secs(60),
    );
    assert!(!verify.stderr.contains("guest-installer-settle"), "systemd-analyze: {}", verify.stderr);
    let service = fs::read_to_string("/lib/systemd/system/guest-installer-settle.service").unwrap();
    let exec = service.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[0], "/usr/sbin/guest-installer", "{exec}");
    let j = installed(&[&argv[1..], &["--json"]].concat(), None).ok().json();
    assert_eq!(j["machines"], serde_json::json!([]), "{j}");

    // ------------------------------------------------------------ remctl
    // postinst told the running remctld to re-read its configuration.
    let t = Instant::now();
    let list = loop {
        let out = realm.remctl(BOB, &["guest", "list", "--json"]);
        drain();
        if out.code == 0 || t.elapsed() > Duration::from_secs(5) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(list.code, 0, "postinst did not make the running remctld load the drop-in: {list:?}");
    assert_eq!(list.json()["machines"], serde_json::json!([]));

    // An admin (root, locally) imports an image and makes bob an owner.
    let iso = installer_iso(false);
    let sum = format!("sha256={}", sha256(&iso));
    installed(&["image", "import", "bookworm", iso.to_str().unwrap(), &sum], Some(&env.config)).ok();
    let disk = env.volume("web1");
    installed(
        &[
            "machine", "add", "web1", &format!("owner={BOB}"), "ip=192.0.2.10", "netmask=255.255.255.0", "gateway=192.0.2.1",
            "nameserver=192.0.2.53", "mac=00:16:3e:00:00:01", &format!("disk={}", disk.display()), "image=bookworm",
        ],
        Some(&env.config),
    )
    .ok();

    // Bob installs from his workstation: remctl HOST guest install VM ... PASSWORD.
    let j = realm.remctl(BOB, &["guest", "install", "web1", "hostname=www", "--no-start", "--json", PASSWORD]).ok().json();
    drain();
    assert_eq!(j["state"], "prepared");
    // Remote callers are shown no host path; the media are the VM's.
    assert!(j.get("media").is_none(), "{j}");
    let media = PathBuf::from("/var/lib/guest-installer/vms/web1/install.qcow2");
    let preseed = String::from_utf8(iso_file(&media, "/preseed.cfg")).unwrap();
    let hash = preseed.lines().find_map(|l| l.strip_prefix("d-i passwd/root-password-crypted password ")).unwrap();
    assert!(sha_crypt::sha512_check(PASSWORD, hash).is_ok(), "the preseed hash does not verify bob's password");
    assert!(preseed.contains("d-i netcfg/get_hostname string www"));
    assert!(!realm.log().contains(PASSWORD), "password in remctld's log");
    assert!(realm.log().contains("**DATA**"));

    let j = realm.remctl(BOB, &["guest", "install", "web1", "--json", PASSWORD]).ok().json();
    drain();
    assert_eq!(j["state"], "installing");
    assert!(env.xl_running("web1"));
    let s = realm.remctl(BOB, &["guest", "status", "web1", "--json"]).ok().json();
    drain();
    assert_eq!(s["state"], "installing");
    let out = realm.remctl(MALLORY, &["guest", "status", "web1", "--json"]);
    drain();
    assert_eq!(out.code, 3, "{out:?}");
    // The shipped ACL for `machine` is empty: remctld refuses everyone.
    let out = realm.remctl("alice/admin@EXAMPLE.ORG", &["guest", "machine", "show", "web1"]);
    assert_eq!((out.code, out.stderr.as_str()), (255, "Access denied\n"), "{out:?}");
    let j = realm.remctl(BOB, &["guest", "cancel", "web1", "--json"]).ok().json();
    drain();
    assert_eq!(j["state"], "cancelled");
    let help = realm.remctl(MALLORY, &["help"]).ok().stdout.clone();
    assert!(help.contains("install VM"), "{help}");

    // ------------------------------------------------------------ ganeti
    // The OS definition installs beside a real Ganeti (scripts/setup.sh)
    // and lists the templates at once (none here).
    if package_state("ganeti") == "installed" {
        let mut c = apt_get(&["install", "--no-install-recommends", &format!("./{ganeti_deb}")]);
        c.current_dir(work.path());
        must(c, Duration::from_secs(600));
        assert_eq!(package_state(GANETI_PKG), "installed");
        let list = fs::read_to_string("/usr/share/ganeti/os/guest-installer/variants.list").expect("variants.list resolves after install");
        assert!(list.lines().all(|l| l.starts_with('#')), "{list}");
        assert_eq!(mode_owner("/var/lib/guest-installer/ganeti"), root(0o700));
        must(apt_get(&["purge", GANETI_PKG]), Duration::from_secs(600));
        assert!(!Path::new("/var/lib/guest-installer/ganeti").exists(), "purge left the variants list");
    } else {
        eprintln!("ganeti is not installed here: the OS definition's package is checked, not installed");
    }

    // ------------------------------------------------------------ purge
    must(apt_get(&["purge", PKG]), Duration::from_secs(600));
    assert_eq!(package_state(PKG), "not-installed");
    // Purge removes the qemu user only if the package made it.
    assert_eq!(qemu_user_exists(), qemu_user_before, "purge changed whether guest-installer-qemu exists");
    assert_eq!(console_user_exists(), console_user_before, "purge changed whether the console account guest exists");
    for p in PATHS {
        assert!(Path::new(p).symlink_metadata().is_err(), "{p} is left after purge");
    }
    assert_eq!(snapshot(Path::new("/etc/remctl")), remctl_before, "/etc/remctl differs from before the install");
    assert_eq!(files_named_like_us(), files_before, "left behind after purge (or removed)");
    // postrm made remctld forget the commands.
    let t = Instant::now();
    let out = loop {
        let out = realm.remctl(BOB, &["guest", "list"]);
        if out.code == 255 || t.elapsed() > Duration::from_secs(5) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((out.code, out.stderr.as_str()), (255, "Unknown command\n"), "after purge: {out:?}");
    drop(realm);
    assert_eq!(installed_packages(), _restore.packages_before, "the set of installed packages changed");
}

/// The console door as installed: its account, its units (the socket
/// enabled, valid), the door program, and the drop-in, which sshd accepts
/// and which stays out of /etc/ssh until the admin links it.
fn check_console_door(user_before: bool) {
    if !user_before {
        let pw = must(cmd("getent", &["passwd", "guest"]), Duration::from_secs(10)).stdout;
        assert!(pw.trim_end().ends_with(":/:/usr/sbin/guest-installer-console"), "{pw}");
        let shadow = must(cmd("getent", &["shadow", "guest"]), Duration::from_secs(10)).stdout;
        assert_eq!(shadow.split(':').nth(1), Some("*"), "no password can match: {shadow}");
        must(cmd("getent", &["group", "guest"]), Duration::from_secs(10));
    }
    let wants = Path::new("/etc/systemd/system/sockets.target.wants/guest-installer-console.socket");
    assert!(wants.symlink_metadata().is_ok(), "the console socket is not enabled");
    let verify = must(
        cmd(
            "systemd-analyze",
            &["verify", "/lib/systemd/system/guest-installer-console.socket", "/lib/systemd/system/guest-installer-console@.service"],
        ),
        Duration::from_secs(60),
    );
    assert!(!verify.stderr.contains("guest-installer-console"), "systemd-analyze: {}", verify.stderr);
    let service = fs::read_to_string("/lib/systemd/system/guest-installer-console@.service").unwrap();
    assert!(service.lines().any(|l| l == "ExecStart=/usr/sbin/guest-installer console-serve"), "{service}");
    // Shipped disabled: nothing of ours in sshd's configuration.
    assert!(!must(cmd("find", &["/etc/ssh", "-name", "*guest-installer*"]), Duration::from_secs(30)).stdout.contains("guest-installer"));
    // The installed door: run any other way than by sshd's forced command, it refuses.
    let door = run_bounded(cmd("/usr/sbin/guest-installer-console", &[]), b"", Duration::from_secs(30));
    assert_eq!(door.code, 3, "{door:?}");
    // sshd accepts the installed drop-in, and applies it to the account only.
    if Path::new("/usr/sbin/sshd").exists() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("hostkey");
        must(cmd("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]), Duration::from_secs(30));
        let config = d.path().join("sshd_config");
        fs::write(&config, format!("Include /usr/share/guest-installer/sshd-console.conf\nHostKey {}\nPidFile none\nUsePAM yes\n", key.display())).unwrap();
        fs::create_dir_all("/run/sshd").unwrap();
        let t = |user: &str| must(cmd("/usr/sbin/sshd", &["-T", "-f", config.to_str().unwrap(), "-C", &format!("user={user},host=x,addr=127.0.0.1")]), Duration::from_secs(30)).stdout;
        let guest = t("guest");
        for line in [
            "authorizedkeyscommand /usr/sbin/guest-installer console-keys %u %f",
            "authorizedkeyscommanduser root",
            "authorizedkeysfile none",
            "authenticationmethods publickey",
            "passwordauthentication no",
            "disableforwarding yes",
            "permittunnel no",
            "permituserrc no",
            "permittty yes",
        ] {
            assert!(guest.lines().any(|l| l == line), "sshd -T for guest lacks {line:?}:\n{guest}");
        }
        assert!(t("root").lines().any(|l| l == "authorizedkeyscommand none"), "the drop-in applies beyond its account");
    }
}

/// The Ganeti package holds exactly the OS definition's files from
/// ganeti/os (scripts 0755, text 0644) and the variants.list link.
fn check_ganeti_deb(deb: &Path) {
    let d = tempfile::tempdir().unwrap();
    must(cmd("dpkg-deb", &["-x", deb.to_str().unwrap(), d.path().to_str().unwrap()]), Duration::from_secs(60));
    let os = d.path().join("usr/share/ganeti/os/guest-installer");
    let mut names: Vec<String> = fs::read_dir(&os).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["create", "export", "ganeti_api_version", "import", "parameters.list", "rename", "variants.list", "verify"]);
    for n in &names {
        let p = os.join(n);
        if n == "variants.list" {
            let target = fs::read_link(&p).unwrap();
            // Absolute: it leaves /usr (Debian policy 10.5).
            assert_eq!(target, Path::new("/var/lib/guest-installer/ganeti/variants.list"));
            continue;
        }
        assert_eq!(fs::read(&p).unwrap(), fs::read(repo().join("ganeti/os").join(n)).unwrap(), "{n} differs from ganeti/os/{n}");
        let mode = fs::metadata(&p).unwrap().mode() & 0o777;
        let script = fs::read(&p).unwrap().starts_with(b"#!");
        assert_eq!(mode, if script { 0o755 } else { 0o644 }, "{n}");
    }
    assert!(d.path().join("usr/share/doc/guest-installer-ganeti/README.Debian").exists() || d.path().join("usr/share/doc/guest-installer-ganeti/README.Debian.gz").exists());
}
