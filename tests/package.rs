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

use common::package::*;
use common::realm::{run_bounded, Realm};
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";
const BOB: &str = "bob@EXAMPLE.ORG";
const MALLORY: &str = "mallory@EXAMPLE.ORG";

fn qemu_user_exists() -> bool {
    cmd("getent", &["passwd", "guest-installer-qemu"]).output().unwrap().status.success()
}

/// The console door's account.
fn console_user_exists() -> bool {
    cmd("getent", &["passwd", "guest"]).output().unwrap().status.success()
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
    assert_not_installed();
    let remctl_before = snapshot(Path::new("/etc/remctl"));
    let files_before = files_named_like_us();
    let _restore = Restore::new();

    // ------------------------------------------------------------ build
    // The package ships the README (debian/guest-installer.docs).
    assert!(repo().join("README.md").is_file(), "README.md is missing: the package installs it as its documentation");
    // Built once per source tree for every test that installs it.
    let built = built();
    let work = &built.dir;
    let deb_name = built.deb();
    let ganeti_deb = built.ganeti_deb();
    let mut debs: Vec<String> = fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".deb"))
        .collect();
    debs.sort();
    let mut want = vec![deb_name.clone(), ganeti_deb.clone()];
    want.sort();
    assert_eq!(debs, want, "the program's package and the Ganeti OS definition");
    check_ganeti_deb(&work.join(&ganeti_deb));
    let changes = built.changes();

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
    c.current_dir(work);
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
                "/usr/lib/systemd/system/guest-installer-console.socket",
                "/usr/lib/systemd/system/guest-installer-console@.service",
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
    check_remctld_units();

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
            &["verify", "/usr/lib/systemd/system/guest-installer-settle.timer", "/usr/lib/systemd/system/guest-installer-settle.service"],
        ),
        Duration::from_secs(60),
    );
    assert!(!verify.stderr.contains("guest-installer-settle"), "systemd-analyze: {}", verify.stderr);
    let service = fs::read_to_string("/usr/lib/systemd/system/guest-installer-settle.service").unwrap();
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
    let media = env.vm_file("web1", "install.qcow2");
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
        c.current_dir(work);
        must(c, Duration::from_secs(600));
        assert_eq!(package_state(GANETI_PKG), "installed");
        let list = fs::read_to_string("/usr/share/ganeti/os/guest-installer/variants.list").expect("variants.list resolves after install");
        assert!(list.lines().all(|l| l.starts_with('#')), "{list}");
        assert_eq!(mode_owner("/var/lib/guest-installer/templates"), root(0o700));
        must(apt_get(&["purge", GANETI_PKG]), Duration::from_secs(600));
        assert!(!Path::new("/var/lib/guest-installer/templates/.variants.list").exists(), "purge left the variants list");
        assert!(Path::new("/var/lib/guest-installer/templates").is_dir(), "purge of the OS definition removed the templates");
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
            &["verify", "/usr/lib/systemd/system/guest-installer-console.socket", "/usr/lib/systemd/system/guest-installer-console@.service"],
        ),
        Duration::from_secs(60),
    );
    assert!(!verify.stderr.contains("guest-installer-console"), "systemd-analyze: {}", verify.stderr);
    let service = fs::read_to_string("/usr/lib/systemd/system/guest-installer-console@.service").unwrap();
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

/// remctld's units as installed: valid, and neither enabled nor started
/// (the operator enables them: operator guide, section 2; tests/guide.rs
/// runs them).
fn check_remctld_units() {
    let (socket, service) = ("/usr/lib/systemd/system/guest-installer-remctld.socket", "/usr/lib/systemd/system/guest-installer-remctld.service");
    let verify = must(cmd("systemd-analyze", &["verify", socket, service]), Duration::from_secs(60));
    assert!(!verify.stderr.contains("guest-installer-remctld"), "systemd-analyze: {}", verify.stderr);
    let enabled = run_bounded(cmd("systemctl", &["is-enabled", "guest-installer-remctld.socket"]), b"", Duration::from_secs(60));
    assert_eq!(enabled.stdout.trim(), "disabled", "{enabled:?}");
    assert!(!Path::new("/etc/systemd/system/sockets.target.wants/guest-installer-remctld.socket").exists());
    let service = fs::read_to_string(service).unwrap();
    assert!(service.lines().any(|l| l == "ExecStart=/usr/sbin/remctld -F -m"), "{service}");
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
            assert_eq!(target, Path::new("/var/lib/guest-installer/templates/.variants.list"));
            continue;
        }
        assert_eq!(fs::read(&p).unwrap(), fs::read(repo().join("ganeti/os").join(n)).unwrap(), "{n} differs from ganeti/os/{n}");
        let mode = fs::metadata(&p).unwrap().mode() & 0o777;
        let script = fs::read(&p).unwrap().starts_with(b"#!");
        assert_eq!(mode, if script { 0o755 } else { 0o644 }, "{n}");
    }
    assert!(d.path().join("usr/share/doc/guest-installer-ganeti/README.Debian").exists() || d.path().join("usr/share/doc/guest-installer-ganeti/README.Debian.gz").exists());
}
