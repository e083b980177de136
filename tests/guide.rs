//! The operator guide's commands, run as the guide gives them: a step that
//! stops working fails here. Each test takes shell blocks out of
//! doc/operator-guide.md by their section (tests/common/guide.rs), changes
//! only the placeholders listed in [`Placeholders`], and runs them with
//! bash, as root.
//!
//! - `section_7_...`: the image import alone, with the cargo-built binary.
//! - `the_guide_...`: the guide from the package to the first remctl
//!   calls, on this machine, for real: the built package installed with
//!   apt-get, a Kerberos realm (krb5kdc and kadmind) in a network
//!   namespace of the test's, the host's keytab made with kadmin and
//!   remctld started from the package's socket unit as the guide says, the
//!   config put together from the guide's own blocks (qemu driver, a file
//!   pool), the ISO imported against a SHA256SUMS, the suite's golden
//!   template (tests/common/golden.rs) as the guide's `bookworm`, the
//!   machine added by the admin, then installed, followed, logged into
//!   with SSH, stopped, started and listed by its owner over remctl, and
//!   the package purged. Inside the namespace `xen1.example.org` is the
//!   namespace's loopback and `/etc/krb5.conf` the test realm's (`ip netns
//!   exec` binds `/etc/netns/NS/*` over `/etc`), so the guide's host name,
//!   realm and principals are used as written.
//!
//! systemd is not the init system here, so `systemctl` in the guide's
//! remctld step is tests/support/systemd/systemctl: the real systemctl's
//! `enable`, and the unit files' own ListenStream= and ExecStart= handed to
//! systemd's systemd-socket-activate for `--now`.
//!
//! Needs root, and the packages of tests/package.rs, tests/remctl.rs and
//! tests/ssh_login.rs.

mod common;

use common::guide::{commands, sh_block, sh_block_with, toml_block};
use common::netns::NetNs;
use common::package::{self as pkg, package_state, Restore};
use common::realm::{run_bounded, Realm};
use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The one place where the test departs from the host the guide
/// describes: (what the guide says, what the test uses), replaced wherever
/// a block shows it, and nothing else.
///
/// - `/srv/iso`: where the ISO and its SHA256SUMS are;
/// - `/etc/krb5.keytab`: the host's keytab is the test's own file (the
///   test realm's krb5.conf names it as the default keytab, so remctld
///   finds it where it would find /etc/krb5.keytab);
/// - `/srv/guest-volumes`: the file pool's directory.
struct Placeholders(Vec<(&'static str, String)>);

impl Placeholders {
    fn new(dir: &Path) -> Placeholders {
        let at = |p: &str| dir.join(p).display().to_string();
        Placeholders(vec![("/srv/iso", at("srv-iso")), ("/etc/krb5.keytab", at("krb5.keytab")), ("/srv/guest-volumes", at("volumes"))])
    }

    fn apply(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
    }

    fn get(&self, guide_text: &str) -> PathBuf {
        PathBuf::from(&self.0.iter().find(|(from, _)| *from == guide_text).unwrap().1)
    }
}

/// Runs `script` with bash, `guest-installer` being the built binary with
/// the env's config, as root on the host.
fn run_as_the_guide_does(env: &Env, script: &str) -> Out {
    let bin_dir = env.root().join("guide-bin");
    fs::create_dir_all(&bin_dir).unwrap();
    write_executable(
        &bin_dir.join("guest-installer"),
        &format!("#!/bin/sh\nGUEST_INSTALLER_CONFIG='{}' exec '{}' \"$@\"\n", env.config.display(), bin().display()),
    );
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display());
    Out::from_output(Command::new("bash").args(["-euo", "pipefail", "-c", script]).env_clear().env("PATH", path).output().unwrap())
}

/// A SHA256SUMS as Debian publishes it beside its ISOs: "HASH  NAME" lines,
/// the names carrying the point release.
fn publish(dir: &Path, iso: &Path, name: &str) {
    fs::copy(iso, dir.join(name)).unwrap();
    let sums = format!(
        "{}  debian-12.8.0-amd64-DVD-1.iso\n{}  {name}\n{}  debian-edu-12.8.0-amd64-netinst.iso\n",
        "0".repeat(64),
        sha256(&dir.join(name)),
        "1".repeat(64)
    );
    fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

/// Section 7: the import, with the sum looked up in a real-shaped
/// SHA256SUMS as the guide shows; a lookup that finds nothing is refused
/// as empty, not as "not hexadecimal".
#[test]
fn section_7_imports_the_first_image_as_the_guide_says() {
    let env = Env::new();
    let places = Placeholders::new(env.root());
    let srv = places.get("/srv/iso");
    fs::create_dir(&srv).unwrap();
    publish(&srv, &installer_iso(false), "debian-12.8.0-amd64-netinst.iso");
    let block = sh_block("7. The first image", 0);
    assert!(block.contains("/srv/iso"), "{block}");
    let script = places.apply(&block);
    let o = run_as_the_guide_does(&env, &script);
    assert_eq!(o.code, 0, "the guide's section 7 failed:\n{script}\n{o:?}");
    assert!(o.stdout.contains("bookworm"), "images does not list it: {o:?}");
    assert!(env.state.join("images/bookworm/manifest.json").exists());

    // The same lookup against a SHA256SUMS that lists another ISO only.
    let env = Env::new();
    fs::write(srv.join("SHA256SUMS"), format!("{}  debian-12.8.0-amd64-DVD-1.iso\n", "0".repeat(64))).unwrap();
    let o = run_as_the_guide_does(&env, &script);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("sha256: is empty"), "{o:?}");
    assert!(!env.state.join("images/bookworm").exists());
}

// ---------------------------------------------------------------- the whole guide

const REALM_HEADING: &str = "remctld: the host's principal, its keytab, the service";
/// The test realm's passwords (no spaces: the realm script passes them to
/// kadmin.local as words).
const ADMIN_PASSWORD: &str = "alice-admin-pw";
const BOB_PASSWORD: &str = "bob-pw";
/// Bounds that only stop a hung step from hanging the suite; none is a
/// measure of speed.
const STEP_BOUND: Duration = Duration::from_secs(1200);
const BOOT_BOUND: Duration = Duration::from_secs(900);

/// `/etc/netns/NS/`: what `ip netns exec NS` binds over `/etc` (the test
/// realm's krb5.conf, a hosts file naming xen1.example.org, and an
/// `ssh/ssh_config` for the owner's ssh). Removed on drop.
struct NetnsEtc(PathBuf);

impl NetnsEtc {
    fn new(ns: &NetNs, krb5_conf: &str, ssh_config: &str) -> NetnsEtc {
        let dir = Path::new("/etc/netns").join(&ns.name);
        fs::create_dir_all(dir.join("ssh")).unwrap();
        let etc = NetnsEtc(dir);
        fs::write(etc.0.join("hosts"), "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 xen1.example.org xen1\n").unwrap();
        fs::write(etc.0.join("krb5.conf"), krb5_conf).unwrap();
        fs::write(etc.0.join("ssh/ssh_config"), ssh_config).unwrap();
        etc
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        let _ = fs::remove_dir(self.0.parent().unwrap()); // only if nobody else's is there
    }
}

/// The units the systemctl stand-in started: each process group stopped
/// (TERM, then KILL) on drop.
struct Started(PathBuf);

impl Drop for Started {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        for e in fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let Some(pid) = fs::read_to_string(e.path()).ok().filter(|_| e.path().extension().is_some_and(|x| x == "pid")).and_then(|s| s.trim().parse::<i32>().ok()) else {
                continue;
            };
            let group = Pid::from_raw(pid);
            let _ = killpg(group, Signal::SIGTERM);
            let t = Instant::now();
            while killpg(group, None).is_ok() && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// The host the guide sets up: where its blocks run, and with what.
struct Host<'a> {
    ns: &'a NetNs,
    dir: &'a Path,
    places: &'a Placeholders,
}

/// Who runs a block: root, with a ticket cache or none.
#[derive(Clone, Copy)]
struct Who<'a> {
    ccache: Option<&'a str>,
    /// The systemctl stand-in first on PATH (only for the block that
    /// needs it: maintainer scripts must meet the real one).
    standin: bool,
    cwd: Option<&'a Path>,
    stdin: &'a [u8],
}

const ROOT: Who = Who { ccache: None, standin: false, cwd: None, stdin: b"" };

impl Host<'_> {
    /// Runs `cmds` (the guide's commands, placeholders replaced) with bash
    /// inside the namespace as root; asserts that they succeed.
    fn run(&self, cmds: &[String], who: Who) -> Out {
        let (script, out) = self.output(cmds, who);
        assert_eq!(out.code, 0, "the guide's commands failed:\n{script}\n{out:?}");
        out
    }

    /// The script run, and its output.
    fn output(&self, cmds: &[String], who: Who) -> (String, Out) {
        let script = self.places.apply(&cmds.join("\n"));
        let mut path = "/usr/sbin:/usr/bin:/sbin:/bin".to_owned();
        if who.standin {
            path = format!("{}:{path}", repo().join("tests/support/systemd").display());
        }
        let mut c = self.ns.cmd("bash", &["-euo", "pipefail", "-c", &script]);
        c.env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.join("home"))
            .env("LC_ALL", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            // apt-get as the guide shows it, without a terminal to say yes.
            .env("APT_CONFIG", self.dir.join("apt.conf"))
            .env("GI_SYSTEMD_STANDIN_DIR", self.dir.join("started"));
        if let Some(cc) = who.ccache {
            c.env("KRB5CCNAME", cc);
        }
        if let Some(d) = who.cwd {
            c.current_dir(d);
        }
        let out = run_bounded(c, who.stdin, STEP_BOUND);
        (script, out)
    }
}

/// The installed program, locally as root (the test's own checks).
fn installed(args: &[&str]) -> Out {
    let mut c = Command::new("/usr/sbin/guest-installer");
    c.args(args).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    run_bounded(c, b"", STEP_BOUND).of_request(args)
}

/// `toml` with its section `header` (e.g. `[volumes]`) replaced by
/// `section` (a whole section, header included).
fn replace_section(toml: &str, header: &str, section: &str) -> String {
    let at = toml.find(&format!("\n{header}\n")).unwrap_or_else(|| panic!("no {header} in\n{toml}")) + 1;
    let end = toml[at + header.len()..].find("\n[").map(|i| at + header.len() + i + 1).unwrap_or(toml.len());
    format!("{}{}\n{}", &toml[..at], section.trim_end(), &toml[end..])
}

/// The console of the installed package's machine `vm`.
fn installed_console(vm: &str) -> String {
    String::from_utf8_lossy(&fs::read(format!("/var/lib/guest-installer/vms/{vm}/console.log")).unwrap_or_default()).into_owned()
}

#[test]
fn the_guide_from_the_package_to_the_first_remctl_calls() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the guide's test installs a package on this machine and needs root");
        return;
    }
    let _machine = pkg::machine_lock();
    pkg::assert_not_installed();
    let started = Instant::now();
    // What other tests of the run share: the packages (built by the
    // guide's own build command), the golden template (built from the
    // mirror, outside the namespace), the ISO.
    let built = pkg::built();
    let template = template_fixture();
    let iso = installer_iso(false);
    let prepared = started.elapsed();

    let _restore = Restore::new();
    let tmp = tempfile::Builder::new().prefix("gi-guide-").tempdir().unwrap();
    let dir = tmp.path();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let places = Placeholders::new(dir);
    for d in ["home/.ssh", "started", "cc", "realm"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::write(dir.join("apt.conf"), "APT::Get::Assume-Yes \"true\";\nDPkg::Lock::Timeout \"300\";\n").unwrap();
    // The guide's gateway is the host's side of the guests' bridge.
    let ns = NetNs::with_bridge("guide", "br0", "192.0.2.1/24");
    let realm = Realm::up_in(
        &ns.prefix(),
        &dir.join("realm"),
        &[
            "--no-remctld",
            "--kadmind",
            "--password",
            &format!("alice/admin={ADMIN_PASSWORD}"),
            "--password",
            &format!("bob={BOB_PASSWORD}"),
            "--max-life",
            "3600",
        ],
        &[],
    );
    let krb5_conf = fs::read_to_string(realm.var("KRB5_CONFIG")).unwrap().replace(
        "[libdefaults]\n",
        &format!("[libdefaults]\n    default_keytab_name = FILE:{}\n", places.get("/etc/krb5.keytab").display()),
    );
    // The owner's ssh: ssh finds ~/.ssh through the password database,
    // not HOME, so its key is named here; no questions (no terminal), and
    // the guest's host key not kept.
    let key = dir.join("home/.ssh/id_ed25519");
    let ssh_config = format!(
        "Host *\n    IdentityFile {}\n    BatchMode yes\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    ConnectTimeout 5\n    LogLevel ERROR\n",
        key.display()
    );
    let _etc = NetnsEtc::new(&ns, &krb5_conf, &ssh_config);
    let _started = Started(dir.join("started"));
    let host = Host { ns: &ns, dir, places: &places };
    let admin_cc = format!("FILE:{}", dir.join("cc/admin").display());
    let bob_cc = format!("FILE:{}", dir.join("cc/bob").display());
    let admin = Who { ccache: Some(&admin_cc), ..ROOT };
    let bob = Who { ccache: Some(&bob_cc), ..ROOT };
    // The admin's ticket (the guide's admin has one already).
    let o = run_bounded(
        {
            let mut c = ns.cmd("kinit", &["alice/admin@EXAMPLE.ORG"]);
            c.env_clear().env("PATH", "/usr/bin:/bin").env("KRB5CCNAME", &admin_cc);
            c
        },
        format!("{ADMIN_PASSWORD}\n").as_bytes(),
        Duration::from_secs(60),
    );
    assert_eq!(o.code, 0, "kinit alice/admin: {o:?}");

    // ------------------------------------------------ 2. the package
    // The build command ran once for the run (pkg::built); the rest here,
    // from the built tree as the guide's `../` expects.
    let install: Vec<String> = commands(&sh_block("2. Install the package", 0)).into_iter().filter(|c| !c.starts_with("dpkg-buildpackage ")).collect();
    assert_eq!(install.len(), 1, "{install:?}");
    assert!(install[0].starts_with("apt-get install "), "{install:?}");
    host.run(&install, Who { cwd: Some(&built.src()), ..ROOT });
    assert_eq!(package_state(pkg::PKG), "installed");

    // ------------------------------------------------ 2. remctld
    // The host's principal and keytab: kadmin asks for the admin's
    // password once per command.
    let pw = format!("{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n");
    let o = host.run(&commands(&sh_block(REALM_HEADING, 0)), Who { stdin: pw.as_bytes(), ..ROOT });
    assert!(o.stdout.contains("host/xen1.example.org@EXAMPLE.ORG"), "klist -k: {o:?}");
    let keytab = places.get("/etc/krb5.keytab");
    assert_eq!(fs::metadata(&keytab).unwrap().mode() & 0o777, 0o600, "the keytab is root's alone");
    // The unit, enabled and started as the guide says.
    host.run(&commands(&sh_block(REALM_HEADING, 1)), Who { standin: true, ..ROOT });
    let mut c = Command::new("systemctl");
    c.args(["is-enabled", "guest-installer-remctld.socket"]);
    let enabled = run_bounded(c, b"", Duration::from_secs(60));
    assert_eq!(enabled.stdout.trim(), "enabled", "{enabled:?}");
    // The check: remctld (the unit's) authenticates with that keytab and
    // runs our drop-in.
    let o = host.run(&commands(&sh_block(REALM_HEADING, 2)), admin);
    assert!(o.stdout.contains("install VM"), "remctl help: {o:?}");

    // ------------------------------------------------ 3. configure
    // The guide's example, its qemu [hypervisor] and its file pool.
    let config = replace_section(&toml_block("3. Configure", 0), "[hypervisor]", &toml_block("`[hypervisor]`", 0));
    let config = places.apply(&replace_section(&config, "[volumes]", &toml_block("`[volumes]`: the volume pool", 1)));
    assert!(config.contains("driver = \"qemu\"") && config.contains("kind = \"file\""), "{config}");
    fs::write("/etc/guest-installer/config.toml", &config).unwrap();

    // ------------------------------------------------ 4. admins
    host.run(&commands(&sh_block("4. Admins and the remctl ACL", 0)), ROOT);

    // ------------------------------------------------ 7. the first image
    let srv = places.get("/srv/iso");
    fs::create_dir(&srv).unwrap();
    publish(&srv, &iso, "debian-12.8.0-amd64-netinst.iso");
    let o = host.run(&commands(&sh_block("7. The first image", 0)), ROOT);
    assert!(o.stdout.contains("bookworm"), "images: {o:?}");

    // ------------------------------------------------ 8. the first template
    // The suite's golden template (built by `template build`, from the
    // mirror), under the guide's name, instead of a build of its own.
    let tdir = Path::new("/var/lib/guest-installer/templates/bookworm");
    fs::create_dir_all(tdir.parent().unwrap()).unwrap();
    sh(Command::new("cp").args(["-a", "--sparse=always"]).arg(template.join("tpl")).arg(tdir));
    let manifest_path = tdir.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    manifest["name"] = "bookworm".into();
    manifest["image"] = "bookworm".into();
    let mode = fs::metadata(&manifest_path).unwrap().permissions();
    fs::set_permissions(&manifest_path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    fs::set_permissions(&manifest_path, mode).unwrap();
    let list = commands(&sh_block("8. The first template", 0));
    assert_eq!(list.last().map(String::as_str), Some("guest-installer templates"), "{list:?}");
    let o = host.run(&list[list.len() - 1..], ROOT);
    assert!(o.stdout.contains("bookworm"), "templates: {o:?}");

    // ------------------------------------------------ 9. machine and owner
    let heading = "9. The first machine and the first remctl call";
    host.run(&commands(&sh_block_with(heading, "machine add web1 ")), admin);
    // The dual-stack example registers as written (its clone is booted by
    // tests/network_families.rs; here only the command text is checked).
    host.run(&commands(&sh_block_with(heading, "machine add web2 ")), admin);
    // bob's key, as ssh-keygen makes it (the guide reads ~/.ssh/id_ed25519.pub).
    sh(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "bob@workstation", "-f"]).arg(&key));
    let owner = commands(&sh_block_with(heading, "kinit "));
    let ssh_at = owner.iter().position(|c| c.starts_with("ssh ")).expect("the owner's ssh");
    let _guest = Guest::of(Path::new("/usr/sbin/guest-installer"), Path::new("/etc/guest-installer/config.toml"), Path::new("/var/lib/guest-installer"), "web1");
    let bob_pw = format!("{BOB_PASSWORD}\n");
    let o = host.run(&owner[..ssh_at], Who { stdin: bob_pw.as_bytes(), ..bob });
    assert!(o.stdout.contains("root login:"), "install: {o:?}");
    assert!(o.stdout.contains("web1: installing"), "status: {o:?}");
    // The owner logs in once the clone is up (the guide's next line).
    let t = Instant::now();
    loop {
        let c = installed_console("web1");
        assert!(!c.contains(guest_installer::template::REFUSED_LINE), "web1 refused its seed:\n{}", readable_tail(&c, 40));
        if c.contains("web1 login:") {
            break;
        }
        assert!(t.elapsed() < BOOT_BOUND, "web1 hung before its login prompt:\n{}", readable_tail(&c, 40));
        std::thread::sleep(Duration::from_millis(500));
    }
    // sshd comes up beside the login prompt, not always before it.
    let mut tries = 0;
    loop {
        let (script, o) = host.output(&owner[ssh_at..ssh_at + 1], bob);
        if o.code == 0 {
            break;
        }
        tries += 1;
        assert!(tries < 60, "{script} never got in: {o:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
    let o = host.run(&commands(&sh_block_with(heading, "guest stop web1")), bob);
    assert!(o.stdout.contains("web1"), "stop, start, list: {o:?}");
    let status = installed(&["status", "web1", "--json"]).ok().json();
    assert_eq!((&status["state"], &status["running"]), (&"installed".into(), &true.into()), "after start: {status}");
    installed(&["stop", "web1", "--force"]).ok();

    // ------------------------------------------------ purge (section 11)
    let purge = "apt-get purge guest-installer";
    let guide = fs::read_to_string(repo().join("doc/operator-guide.md")).unwrap();
    assert!(guide.contains(&format!("`{purge}`")), "the guide no longer says {purge}");
    host.run(&[purge.to_owned()], ROOT);
    assert_eq!(package_state(pkg::PKG), "not-installed");
    for p in ["/var/lib/guest-installer", "/etc/systemd/system/sockets.target.wants/guest-installer-remctld.socket"] {
        assert!(Path::new(p).symlink_metadata().is_err(), "{p} is left after purge");
    }
    println!(
        "the guide's steps: {:.1} s (after {:.1} s for the shared package, template and ISO)",
        (started.elapsed() - prepared).as_secs_f64(),
        prepared.as_secs_f64()
    );
}
