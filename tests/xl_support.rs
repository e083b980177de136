//! Tests for the xl test-support tooling in tests/support/xl/:
//! `check-xl-config` (validates xl domain configs with Xen's own parser: the real
//! `xl -N create` with a faked hypervisor, plus libxlutil) and `xl-standin` (the
//! stand-in for `/usr/sbin/xl` used by the integration tests). See
//! tests/support/xl/README.md. Needs root and xen-utils-4.17, libxen-dev, gcc.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const GOOD_HVM: &str = r#"name = "vm1"
builder = "hvm"
memory = 512
vcpus = 1
disk = [ "format=raw, vdev=xvda, access=rw, target=/dev/xenvg/vm1",
         "format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/var/lib/guest-installer/vms/vm1/install.iso" ]
boot = "dc"
vif = [ "mac=00:16:3e:00:00:01, bridge=xenbr0" ]
serial = "pty"
on_reboot = "destroy"
"#;

const GOOD_PV: &str = r#"name = "vm2"
type = "pv"
memory = 1024
vcpus = 2
kernel = "/var/lib/guest-installer/vms/vm2/vmlinuz"
ramdisk = "/var/lib/guest-installer/vms/vm2/initrd.gz"
extra = "auto=true priority=critical console=hvc0"
disk = [ "format=raw, vdev=xvda, access=rw, target=/dev/xenvg/vm2" ]
vif = [ "mac=00:16:3e:00:00:02, bridge=xenbr0" ]
on_reboot = "destroy"
"#;

fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/xl")
}

/// Shared build cache for the checker's C helpers (built once, reused by every test).
fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("xl-support")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    )
}

fn check_file(cfg: &Path, build: &Path) -> Output {
    Command::new(support_dir().join("check-xl-config"))
        .arg(cfg)
        .env("XL_SUPPORT_BUILD_DIR", build)
        .stdin(Stdio::null())
        .output()
        .expect("run check-xl-config")
}

fn check(cfg_text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("guest.cfg");
    fs::write(&cfg, cfg_text).unwrap();
    check_file(&cfg, &build_dir())
}

fn assert_accepted(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "config rejected:\n{}",
        describe(o)
    );
    assert!(o.stderr.is_empty(), "unexpected stderr:\n{}", describe(o));
    text(&o.stdout)
}

fn assert_rejected(o: &Output, reason: &str) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "config not rejected:\n{}",
        describe(o)
    );
    assert!(
        o.stdout.is_empty(),
        "stdout must be empty on rejection:\n{}",
        describe(o)
    );
    assert!(
        text(&o.stderr).contains(reason),
        "stderr lacks {reason:?}:\n{}",
        describe(o)
    );
}

// ---------------------------------------------------------------- check-xl-config

#[test]
fn checker_accepts_hvm_installer_config() {
    let json = assert_accepted(&check(GOOD_HVM));
    for want in [
        r#""name": "vm1""#,
        r#""type": "hvm""#,
        r#""max_memkb": 524288"#,
        r#""boot": "dc""#,
        r#""serial": "pty""#,
        r#""pdev_path": "/dev/xenvg/vm1""#,
        r#""vdev": "xvda""#,
        r#""pdev_path": "/var/lib/guest-installer/vms/vm1/install.iso""#,
        r#""is_cdrom": 1"#,
        r#""mac": "00:16:3e:00:00:01""#,
        r#""bridge": "xenbr0""#,
    ] {
        assert!(json.contains(want), "JSON lacks {want}:\n{json}");
    }
    // on_reboot="destroy" is libxl's default value, so the JSON omits it;
    // "restart" (xl's default) would show up as "on_reboot": "restart".
    assert!(!json.contains(r#""on_reboot""#), "{json}");
}

#[test]
fn checker_accepts_pv_config() {
    let json = assert_accepted(&check(GOOD_PV));
    for want in [
        r#""type": "pv""#,
        r#""kernel": "/var/lib/guest-installer/vms/vm2/vmlinuz""#,
        r#""ramdisk": "/var/lib/guest-installer/vms/vm2/initrd.gz""#,
        r#""cmdline": "auto=true priority=critical console=hvc0""#,
        r#""max_vcpus": 2"#,
    ] {
        assert!(json.contains(want), "JSON lacks {want}:\n{json}");
    }
}

#[test]
fn checker_does_not_need_disk_targets_or_kernel_to_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("does-not-exist");
    let cfg = GOOD_HVM
        .replace(
            "/dev/xenvg/vm1",
            &missing.join("disk").display().to_string(),
        )
        .replace(
            "/var/lib/guest-installer/vms/vm1/install.iso",
            &missing.join("install.iso").display().to_string(),
        );
    assert_accepted(&check(&cfg));
    let cfg = GOOD_PV.replace(
        "/var/lib/guest-installer/vms/vm2",
        &missing.display().to_string(),
    );
    assert_accepted(&check(&cfg));
    assert!(!missing.exists());
}

#[test]
fn checker_rejects_syntax_error() {
    let o = check(&GOOD_HVM.replace("memory = 512", "memory = = 512"));
    assert_rejected(&o, "syntax error");
    let o = check(&GOOD_HVM.replace(r#"serial = "pty""#, r#"serial = "pty"#));
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
}

#[test]
fn checker_rejects_malformed_mac_although_xl_exits_0() {
    let o = check(&GOOD_HVM.replace("00:16:3e:00:00:01", "00:16:3e:00:00:zz"));
    assert_rejected(&o, "Invalid parameter `mac'");
    // xl itself silently accepts these (a 5-octet MAC even gets a garbage 6th octet);
    // check-xl-config adds a strict format check on every mac= value
    for mac in [
        "00:16:3e:00:01",
        "00:16:3e:00:00:01:02",
        "00-16-3e-00-00-01",
        "0:16:3e:0:0:1",
    ] {
        let o = check(&GOOD_HVM.replace("00:16:3e:00:00:01", mac));
        assert_rejected(&o, &format!("malformed MAC address `{mac}'"));
    }
    // upper case is fine (xl normalises it)
    let json = assert_accepted(&check(
        &GOOD_HVM.replace("00:16:3e:00:00:01", "00:16:3E:00:00:0A"),
    ));
    assert!(json.contains(r#""mac": "00:16:3e:00:00:0a""#), "{json}");
}

#[test]
fn checker_rejects_bad_disk_spec() {
    let o = check(&GOOD_HVM.replace("format=raw, vdev=xvda", "format=bogus, vdev=xvda"));
    assert_rejected(&o, "disk specification");
    let o = check(&GOOD_HVM.replace("access=rw", "acces=rw"));
    assert_rejected(&o, "disk specification");
}

#[test]
fn checker_rejects_warnings_and_semantic_errors() {
    // only a libxlutil warning, xl still exits 0
    let o = check(&GOOD_HVM.replace("memory = 512", r#"memory = "lots""#));
    assert_rejected(&o, "not a valid number");
    let o = check(&GOOD_HVM.replace(r#"on_reboot = "destroy""#, r#"on_reboot = "explode""#));
    assert_rejected(&o, "Unknown on_reboot action");
    let o = check(&GOOD_HVM.replace("name = \"vm1\"\n", ""));
    assert_rejected(&o, "Domain name must be specified");
}

#[test]
fn checker_usage_errors() {
    let o = Command::new(support_dir().join("check-xl-config"))
        .arg("/nonexistent/guest.cfg")
        .env("XL_SUPPORT_BUILD_DIR", build_dir())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let o = Command::new(support_dir().join("check-xl-config"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}

#[test]
fn checker_concurrent_first_use_builds_once_atomically() {
    // A fresh, empty build dir: all threads race to build the helpers.
    let build = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.cfg");
    let bad = dir.path().join("bad.cfg");
    fs::write(&good, GOOD_HVM).unwrap();
    fs::write(&bad, GOOD_HVM.replace("00:16:3e:00:00:01", "00:16:3e")).unwrap();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let cfg = if i % 3 == 2 {
                bad.clone()
            } else {
                good.clone()
            };
            let build = build.path().to_path_buf();
            thread::spawn(move || (i % 3 == 2, check_file(&cfg, &build)))
        })
        .collect();
    for h in handles {
        let (is_bad, o) = h.join().unwrap();
        if is_bad {
            assert_rejected(&o, "Invalid parameter `mac'");
        } else {
            assert_accepted(&o);
        }
    }
    // nothing half-built left behind
    for entry in fs::read_dir(build.path()).unwrap() {
        let key_dir = entry.unwrap().path();
        for f in fs::read_dir(&key_dir).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            assert!(
                ["fakexen.so", "xlucheck", "mnt"].contains(&name.as_str()),
                "{name}"
            );
        }
    }
}

// ---------------------------------------------------------------- xl-standin

/// One test's private xl stand-in, set up the way README.md describes.
struct StandIn {
    dir: tempfile::TempDir,
    xl: PathBuf,
}

impl StandIn {
    fn new() -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        // A child process does the copy (see README: avoids ETXTBSY).
        let o = Command::new(support_dir().join("install-standin"))
            .arg(dir.path().join("bin"))
            .env("XL_SUPPORT_BUILD_DIR", build_dir())
            .output()
            .expect("run install-standin");
        assert!(o.status.success(), "install-standin: {}", describe(&o));
        let xl = PathBuf::from(text(&o.stdout).trim_end());
        assert_eq!(xl, fs::canonicalize(dir.path()).unwrap().join("bin/xl"));
        StandIn { dir, xl }
    }

    fn state(&self, rel: &str) -> PathBuf {
        self.xl.parent().unwrap().join(rel)
    }

    fn set_mode(&self, mode: &str) {
        fs::write(self.state("mode"), format!("{mode}\n")).unwrap();
    }

    fn write_cfg(&self, file: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(file);
        fs::write(&p, body).unwrap();
        p
    }

    /// Runs the stand-in the way guest-installer does: cleared environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.xl);
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run xl-standin")
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.state("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

#[test]
fn standin_create_list_domid_destroy() {
    let s = StandIn::new();
    let cfg = s.write_cfg("vm1.cfg", GOOD_HVM);
    let cfg_s = cfg.to_str().unwrap();

    let o = s.run(&["create", cfg_s]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(text(&o.stderr), format!("Parsing config from {cfg_s}\n"));
    assert!(s.state("domains/vm1").is_file());
    assert_eq!(
        fs::read_to_string(s.state("configs/vm1.cfg")).unwrap(),
        GOOD_HVM
    );

    let o = s.run(&["list", "vm1"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let out = text(&o.stdout);
    assert!(out.starts_with("Name "), "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with("vm1 "), "{out}");
    assert!(out.contains("  512 "), "memory from the config: {out}");

    let o = s.run(&["domid", "vm1"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(text(&o.stdout), "1\n");

    // a second create of the same name fails like real xl
    let o = s.run(&["create", cfg_s]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        text(&o.stderr).contains("already exists"),
        "{}",
        describe(&o)
    );

    // xl list with no argument lists Domain-0 and vm1
    let o = s.run(&["list"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(text(&o.stdout).contains("Domain-0"));
    assert!(text(&o.stdout).contains("\nvm1 "));

    let o = s.run(&["destroy", "vm1"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(!s.state("domains/vm1").exists());

    let o = s.run(&["list", "vm1"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(
        text(&o.stderr),
        "vm1 is an invalid domain identifier (rc=-6)\n"
    );

    // real xl domid's wording differs from list/destroy's
    let o = s.run(&["domid", "vm1"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert_eq!(
        text(&o.stderr),
        "Can't get domid of domain name 'vm1', maybe this domain does not exist.\n"
    );

    let o = s.run(&["list", "42"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert_eq!(text(&o.stderr), "Error: Domain '42' does not exist.\n");

    let o = s.run(&["destroy", "vm1"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(text(&o.stderr).contains("is an invalid domain identifier"));

    assert_eq!(
        s.calls(),
        [
            format!("create {cfg_s}"),
            "list vm1".into(),
            "domid vm1".into(),
            format!("create {cfg_s}"),
            "list".into(),
            "destroy vm1".into(),
            "list vm1".into(),
            "domid vm1".into(),
            "list 42".into(),
            "destroy vm1".into(),
        ]
    );
}

#[test]
fn standin_works_with_an_empty_environment_and_pv_config() {
    let s = StandIn::new();
    let cfg = s.write_cfg("vm2 config.cfg", GOOD_PV);
    let o = s
        .command(&["create", "-q", cfg.to_str().unwrap()])
        .env_remove("PATH")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(
        o.stderr.is_empty(),
        "-q: no 'Parsing config' line: {}",
        describe(&o)
    );
    let o = s
        .command(&["list", "vm2"])
        .env_remove("PATH")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(text(&o.stdout).contains(" 1024 "), "{}", describe(&o));
    // arguments with spaces are logged shell-quoted
    assert_eq!(
        s.calls()[0],
        format!("create -q {}", cfg.to_str().unwrap().replace(' ', "\\ "))
    );
}

#[test]
fn standin_guest_finishing_is_simulated_by_removing_the_marker() {
    let s = StandIn::new();
    let cfg = s.write_cfg("vm1.cfg", GOOD_HVM);
    assert!(s.run(&["create", cfg.to_str().unwrap()]).status.success());
    assert!(s.run(&["list", "vm1"]).status.success());
    // the installer finished, the guest rebooted, on_reboot="destroy" removed it:
    fs::remove_file(s.state("domains/vm1")).unwrap();
    let o = s.run(&["list", "vm1"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
}

#[test]
fn standin_rejects_invalid_configs() {
    let s = StandIn::new();
    let cfg = s.write_cfg(
        "bad.cfg",
        &GOOD_HVM.replace("00:16:3e:00:00:01", "00:16:3e:00:00:zz"),
    );
    let o = s.run(&["create", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        text(&o.stderr).contains("Invalid parameter `mac'"),
        "{}",
        describe(&o)
    );
    assert!(!s.state("domains/vm1").exists());
    assert!(!s.state("configs/vm1.cfg").exists());

    let cfg = s.write_cfg(
        "bad2.cfg",
        &GOOD_HVM.replace("vdev=hdc,", "vdev=hdc, bogus=1,"),
    );
    let o = s.run(&["create", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(!s.state("domains/vm1").exists());

    let o = s.run(&["create", "/nonexistent.cfg"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert_eq!(s.calls().len(), 3);
}

#[test]
fn standin_fail_mode() {
    let s = StandIn::new();
    s.set_mode("fail");
    let cfg = s.write_cfg("vm1.cfg", GOOD_HVM);
    let o = s.run(&["create", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        text(&o.stderr).contains("libxl: error:"),
        "{}",
        describe(&o)
    );
    assert!(!s.state("domains/vm1").exists());
    assert!(
        s.state("configs/vm1.cfg").exists(),
        "a valid config is kept even in fail mode"
    );
    assert_eq!(s.run(&["list", "vm1"]).status.code(), Some(1));
}

#[test]
fn standin_missing_domain_mode() {
    let s = StandIn::new();
    s.set_mode("missing-domain");
    let cfg = s.write_cfg("vm1.cfg", GOOD_HVM);
    let o = s.run(&["create", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(s.run(&["list", "vm1"]).status.code(), Some(1));
    assert_eq!(s.run(&["domid", "vm1"]).status.code(), Some(1));
}

#[test]
fn standin_hang_mode_can_be_timed_out_and_killed() {
    let s = StandIn::new();
    s.set_mode("hang");
    let cfg = s.write_cfg("vm1.cfg", GOOD_HVM);
    let mut child = s
        .command(&["create", cfg.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // wait until the stand-in has logged the call, then give it a short timeout
    while s.calls().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "stand-in never ran"
        );
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "hang mode must not exit"
    );
    child.kill().unwrap();
    // wait_with_output reads to EOF: it returns only if nothing else holds the
    // pipes, i.e. killing the stand-in's pid left no process behind
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!s.state("domains/vm1").exists());
}

#[test]
fn standin_unknown_commands_and_options_are_usage_errors() {
    let s = StandIn::new();
    for args in [
        &["pause", "vm1"][..],
        &["shutdown", "-w", "vm1"],
        &["block-detach", "vm1"],
        &[],
        &["create"],
        &["create", "-c", "x.cfg"],
        &["list", "-l"],
    ] {
        let o = s.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", describe(&o));
        assert!(
            text(&o.stderr).contains("Usage: xl"),
            "{args:?}: {}",
            describe(&o)
        );
    }
}

#[test]
fn standin_without_checker_file_refuses_to_create() {
    let s = StandIn::new();
    fs::remove_file(s.state("checker")).unwrap();
    let cfg = s.write_cfg("vm1.cfg", GOOD_HVM);
    let o = s.run(&["create", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert!(
        text(&o.stderr).contains("no checker configured"),
        "{}",
        describe(&o)
    );
    // "none" skips validation (faster, but accepts anything with a name)
    fs::write(s.state("checker"), "none\n").unwrap();
    let o = s.run(&["create", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(s.state("domains/vm1").exists());
}
