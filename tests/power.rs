//! Installed machines run from their own disk and kernel, under the xl
//! driver (the stand-in for `xl`, every config checked by Xen's own
//! parser): the configs for a clone's first boot, an installed clone and
//! an installed system; `start`, `stop [--force]`, `reboot` and who may
//! use them; the identity seed leaving a clone's config.
//!
//! Needs (scripts/setup.sh): xen-utils, libxen-dev, gcc, grub-xen-host.

mod common;

use common::*;
use guest_installer::config::Config;
use guest_installer::hypervisor::{self, xl, Domain};
use guest_installer::media::Media;
use guest_installer::state::VmDir;
use guest_installer::types::VmName;
use std::fs;
use std::path::Path;

const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";
const PVGRUB: &str = "/usr/lib/grub-xen/grub-x86_64-xen.bin";

fn config(env: &Env) -> Config {
    Config::load(&env.config).unwrap()
}

fn machine(env: &Env, vm: &str) -> guest_installer::registry::Machine {
    guest_installer::registry::Registry::new(env.state.join("machines")).get(&VmName::parse(vm).unwrap()).unwrap()
}

fn parsed(cfg: &Path) -> serde_json::Value {
    serde_json::from_str(&check_xl_config(cfg)).unwrap()
}

/// The disks' targets in libxl's JSON, in order.
fn disk_targets(j: &serde_json::Value) -> Vec<String> {
    j["disks"].as_array().map(|d| d.iter().map(|d| d["pdev_path"].as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
}

/// Each way a machine boots from its own disk, rendered by the driver and
/// read back by Xen's own parser: PV guests run pvgrub2 and nothing else
/// from the host (no ramdisk, no command line); HVM guests (an installed
/// system, a whole-disk clone) boot their disk (`boot = "c"`) with no CD
/// and no kernel; only a clone's first boot has the seed, read-only; none
/// of them is destroyed on reboot.
#[test]
fn configs_for_guests_that_boot_their_own_disk_are_accepted_by_xen() {
    let env = Env::new();
    let disk = env.machine("m1", 1, None);
    let c = config(&env);
    let m = machine(&env, "m1");
    let vmdir = VmDir::new(&c, &m.name);
    fs::create_dir_all(&vmdir.dir).unwrap();
    let seed = vmdir.identity_seed();
    for (media, what) in [
        (Media::Clone { seed: seed.clone(), pv: true }, "pv clone"),
        (Media::Clone { seed: seed.clone(), pv: false }, "hvm clone"),
        (Media::Loader, "loader"),
        (Media::Disk { pv: true }, "pv disk"),
        (Media::Disk { pv: false }, "hvm disk"),
    ] {
        let d = Domain::for_machine(&m, &c, &media).unwrap();
        let cfg = env.root().join(format!("{}.cfg", what.replace(' ', "-")));
        fs::write(&cfg, xl::render(&d, Path::new(PVGRUB))).unwrap();
        let j = parsed(&cfg);
        let b = &j["b_info"];
        let text = fs::read_to_string(&cfg).unwrap();
        assert!(text.contains("on_reboot = \"restart\""), "{what}: {text}");
        let targets = disk_targets(&j);
        assert_eq!(targets[0], disk.to_str().unwrap(), "{what}: {j}");
        match media {
            Media::Disk { pv: false } | Media::Clone { pv: false, .. } => {
                assert_eq!(j["c_info"]["type"], "hvm", "{what}: {j}");
                assert_eq!(b["type.hvm"]["boot"], "c", "{what}: {j}");
                assert!(b["kernel"].is_null() && b["ramdisk"].is_null(), "{what}: the host chose a kernel: {j}");
            }
            _ => {
                assert_eq!(j["c_info"]["type"], "pv", "{what}: {j}");
                assert_eq!(b["kernel"], PVGRUB, "{what}: {j}");
                assert!(b["ramdisk"].is_null() && b["cmdline"].is_null(), "{what}: the host chose a kernel: {j}");
            }
        }
        let want = if matches!(media, Media::Clone { .. }) { 2 } else { 1 };
        assert_eq!(targets.len(), want, "{what}: {j}");
        if want == 2 {
            assert_eq!(targets[1], seed.to_str().unwrap(), "{j}");
            assert_eq!(j["disks"][1]["vdev"], "xvdb", "{what}: {j}");
            assert_eq!(j["disks"][1]["readwrite"].as_i64().unwrap_or(0), 0, "{what}: the seed is writable: {j}");
        }
    }
}

/// Without pvgrub2 on the host, no PV config that needs it is written: the
/// error names the package, and the old config stays.
#[test]
fn a_missing_pvgrub_is_an_error_that_names_the_package() {
    let env = Env::new();
    env.machine("m1", 1, None);
    let text = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, text.replace("[hypervisor]\n", "[hypervisor]\npvgrub = \"/nonexistent/grub-x86_64-xen.bin\"\n")).unwrap();
    let c = config(&env);
    let m = machine(&env, "m1");
    let vmdir = VmDir::new(&c, &m.name);
    fs::create_dir_all(&vmdir.dir).unwrap();
    fs::write(vmdir.domain_config(), "old").unwrap();
    let hv = hypervisor::for_config(&c).unwrap();
    let e = hv.prepare(&Domain::for_machine(&m, &c, &Media::Loader).unwrap(), &vmdir).unwrap_err().to_string();
    assert!(e.contains("grub-xen-host"), "{e}");
    assert_eq!(fs::read_to_string(vmdir.domain_config()).unwrap(), "old");
    // An HVM system needs no boot loader from the host.
    hv.prepare(&Domain::for_machine(&m, &c, &Media::Disk { pv: false }).unwrap(), &vmdir).unwrap();
}

/// Under qemu, a guest that boots through GRUB needs the GRUB image, made
/// from grub-pc-bin: without it the error names the package, no config is
/// written and nothing is started. With it, the image is made once into
/// STATE/boot/ (lnxboot.img in front of a core.img) and reused.
#[test]
fn qemu_without_grub_pc_names_the_package_and_starts_nothing() {
    let env = Env::new();
    env.use_qemu();
    env.machine("q1", 1, None);
    let text = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, text.replace("[hypervisor]
", "[hypervisor]
grub_pc = \"/nonexistent/i386-pc\"
")).unwrap();
    let c = config(&env);
    let m = machine(&env, "q1");
    let vmdir = VmDir::new(&c, &m.name);
    fs::create_dir_all(&vmdir.dir).unwrap();
    let hv = hypervisor::for_config(&c).unwrap();
    let d = Domain::for_machine(&m, &c, &Media::Loader).unwrap();
    for e in [hv.prepare(&d, &vmdir).unwrap_err(), hv.start(&d, &vmdir).unwrap_err()] {
        assert!(e.to_string().contains("grub-pc-bin"), "{e}");
    }
    assert!(!vmdir.domain_config().exists());
    assert!(!hv.is_running(&m.name, &vmdir).unwrap());

    fs::write(&env.config, text).unwrap();
    let c = config(&env);
    let hv = hypervisor::for_config(&c).unwrap();
    let d = Domain::for_machine(&m, &c, &Media::Loader).unwrap();
    hv.prepare(&d, &vmdir).unwrap();
    let img = env.state.join("boot/grub-i386-pc.bin");
    let bin = fs::read(&img).unwrap();
    let lnxboot = fs::read("/usr/lib/grub/i386-pc/lnxboot.img").unwrap();
    assert!(bin.len() > lnxboot.len() && bin.starts_with(&lnxboot));
    let cfg = fs::read_to_string(vmdir.domain_config()).unwrap();
    // qemu gets GRUB as a descriptor; the record names the file behind it.
    assert!(cfg.lines().any(|l| l.starts_with("# ") && l.ends_with(&format!(": {}", img.display()))), "{cfg}");
    assert!(cfg.contains("-mon\nchardev=gi-control,mode=control"), "{cfg}");
    assert!(!cfg.contains("-no-reboot"), "{cfg}");
    let made = fs::metadata(&img).unwrap().modified().unwrap();
    hv.prepare(&d, &vmdir).unwrap();
    assert_eq!(fs::metadata(&img).unwrap().modified().unwrap(), made, "the image was made again");
}

/// Once a clone's identity is applied, the seed leaves both the running
/// domain (`xl block-detach NAME xvdb`, which the stand-in accepts only
/// for a disk the domain was created with) and the config it is started
/// from again, which Xen still accepts and which names no seed.
#[test]
fn detach_seed_takes_the_seed_out_of_the_domain_and_its_config() {
    let env = Env::new();
    env.machine("c1", 1, None);
    let c = config(&env);
    let m = machine(&env, "c1");
    let vmdir = VmDir::new(&c, &m.name);
    fs::create_dir_all(&vmdir.dir).unwrap();
    fs::write(vmdir.identity_seed(), vec![0u8; 65536]).unwrap();
    let hv = hypervisor::for_config(&c).unwrap();
    let first = Media::Clone { seed: vmdir.identity_seed(), pv: true };
    let d = Domain::for_machine(&m, &c, &first).unwrap();
    hv.prepare(&d, &vmdir).unwrap();
    hv.start(&d, &vmdir).unwrap();
    assert!(env.xl_running("c1"));
    let loader = Media::Loader;
    hv.detach_seed(&Domain::for_machine(&m, &c, &loader).unwrap(), &vmdir).unwrap();
    let calls = fs::read_to_string(env.xl.parent().unwrap().join("calls.log")).unwrap();
    assert!(calls.lines().any(|l| l == "block-detach c1 xvdb"), "{calls}");
    assert_eq!(fs::read_to_string(env.xl.parent().unwrap().join("detached/c1")).unwrap(), "xvdb\n");
    let text = fs::read_to_string(vmdir.domain_config()).unwrap();
    assert!(!text.contains("identity.img") && !text.contains("xvdb"), "{text}");
    fs::remove_file(vmdir.identity_seed()).unwrap();
    assert_eq!(disk_targets(&parsed(&vmdir.domain_config())).len(), 1);
    // A second detach finds no seed attached: the stand-in refuses, as xl.
    assert!(hv.detach_seed(&Domain::for_machine(&m, &c, &loader).unwrap(), &vmdir).is_err());
    // A stopped clone: only the config is rewritten.
    env.xl_guest_finishes("c1");
    hv.detach_seed(&Domain::for_machine(&m, &c, &loader).unwrap(), &vmdir).unwrap();
}

fn run(env: &Env, who: As, args: &[&str]) -> Out {
    env.run(who, args, b"")
}

/// An installer-path machine, through its whole life under xl: nothing to
/// start before it is installed (invalid), busy while it installs, then
/// `start` boots its disk (HVM, `boot = "c"`, no CD, accepted by Xen's
/// parser via the stand-in), `reboot` is passed to xl, `stop` shuts it
/// down cleanly; a guest that ignores the request makes `stop` fail, and
/// `stop --force` destroy it after `[timeouts] stop_s`. Owners and admins
/// only.
#[test]
fn start_stop_reboot_an_installed_system_under_xl() {
    let env = Env::with_config_extra("");
    let text = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, text.replace("hypervisor_s = 10\n", "hypervisor_s = 10\nstop_s = 2\n")).unwrap();
    env.import("deb12", false);
    env.machine("vm1", 1, Some("deb12"));
    for verb in ["start", "stop", "reboot"] {
        let o = run(&env, As::Remote(OWNER), &[verb, "vm1", "--json"]);
        assert_eq!(o.code, 2, "{verb} before any install: {o:?}");
        assert!(o.json()["error"]["message"].as_str().unwrap().contains("nothing is installed"), "{o:?}");
    }
    env.run(As::Remote(OWNER), &["install", "vm1", "--json"], PW_HASH.as_bytes()).ok();
    for verb in ["start", "stop", "reboot"] {
        let o = run(&env, As::Remote(OWNER), &[verb, "vm1", "--json"]);
        assert_eq!(o.code, 5, "{verb} while installing: {o:?}");
    }
    env.xl_guest_finishes("vm1");
    assert_eq!(run(&env, As::Remote(OWNER), &["status", "vm1", "--json"]).ok().json()["state"], "installed");
    // Strangers cannot, and learn nothing.
    for verb in ["start", "stop", "reboot"] {
        assert_eq!(run(&env, As::Remote(STRANGER), &[verb, "vm1", "--json"]).code, 3, "{verb}");
    }
    assert!(!env.xl_running("vm1"));
    let o = run(&env, As::Remote(OWNER), &["reboot", "vm1", "--json"]);
    assert_eq!(o.code, 2, "reboot of a stopped machine: {o:?}");

    let j = run(&env, As::Remote(COOWNER), &["start", "vm1", "--json"]).ok().json();
    assert_eq!((j["action"].as_str(), j["running"].as_bool()), (Some("start"), Some(true)), "{j}");
    assert!(env.xl_running("vm1"));
    let cfg = env.vm_file("vm1", "domain.cfg");
    let parsed = parsed(&cfg);
    assert_eq!(parsed["c_info"]["type"], "hvm", "{parsed}");
    assert_eq!(parsed["b_info"]["type.hvm"]["boot"], "c", "{parsed}");
    assert_eq!(disk_targets(&parsed).len(), 1, "the installer's CD is still attached: {parsed}");
    // Every path the config names exists.
    for t in disk_targets(&parsed) {
        assert!(Path::new(&t).exists(), "{t}");
    }
    assert_eq!(run(&env, As::Remote(OWNER), &["start", "vm1", "--json"]).code, 5, "started twice");

    // A start the hypervisor refuses is an error, and nothing runs.
    run(&env, As::Remote(OWNER), &["stop", "vm1", "--json"]).ok();
    env.xl_mode("fail");
    let o = run(&env, As::Remote(OWNER), &["start", "vm1", "--json"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(!env.xl_running("vm1"));
    env.xl_mode("ok");
    run(&env, As::Remote(OWNER), &["start", "vm1", "--json"]).ok();

    run(&env, As::Remote(ADMIN), &["reboot", "vm1", "--json"]).ok();
    assert!(env.xl_running("vm1"));
    let j = run(&env, As::Remote(OWNER), &["stop", "vm1", "--json"]).ok().json();
    assert_eq!((j["running"].as_bool(), j["forced"].as_bool()), (Some(false), Some(false)), "{j}");
    assert!(!env.xl_running("vm1"));
    // Stopping a stopped machine is no error.
    run(&env, As::Remote(OWNER), &["stop", "vm1", "--json"]).ok();

    // A guest that ignores the shutdown request.
    run(&env, As::Remote(OWNER), &["start", "vm1", "--json"]).ok();
    env.xl_mode("stubborn");
    let o = run(&env, As::Remote(OWNER), &["stop", "vm1", "--json"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("--force"), "{o:?}");
    assert!(env.xl_running("vm1"), "stop without --force destroyed the guest");
    let j = run(&env, As::Remote(OWNER), &["stop", "vm1", "--force", "--json"]).ok().json();
    assert_eq!(j["forced"], true, "{j}");
    assert!(!env.xl_running("vm1"));
    let calls = fs::read_to_string(env.xl.parent().unwrap().join("calls.log")).unwrap();
    for want in ["reboot vm1", "shutdown vm1", "destroy vm1"] {
        assert!(calls.lines().any(|l| l == want), "no `xl {want}` in\n{calls}");
    }
    // The audit log names each request.
    let audit = env.audit().join("\n");
    for verb in ["start", "stop", "reboot"] {
        assert!(audit.contains(&format!("action={verb}")), "{audit}");
    }
}

/// Under qemu, a guest whose control socket cannot be reached (here a
/// qemu started without one): `stop` fails and leaves it running;
/// `stop --force` destroys it at once, without waiting for a shutdown
/// that was never requested.
#[test]
fn qemu_stop_when_the_shutdown_request_cannot_be_sent() {
    let env = Env::new();
    env.use_qemu();
    let text = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, text.replace("hypervisor_s = 10\n", "hypervisor_s = 10\nstop_s = 600\n")).unwrap();
    env.machine("q2", 2, None);
    let c = config(&env);
    let m = machine(&env, "q2");
    let vmdir = VmDir::new(&c, &m.name);
    fs::create_dir_all(&vmdir.dir).unwrap();
    let mut st = guest_installer::state::VmState::prepared(
        Some(guest_installer::types::ImageName::parse("img").unwrap()),
        c.hypervisor.driver,
        None,
    );
    st.phase = guest_installer::state::Phase::Installed;
    vmdir.save(&st).unwrap();
    // A qemu that is "this machine's guest" (its name marker), with no
    // machine and no control socket.
    sh(std::process::Command::new("qemu-system-x86_64")
        .args(["-name", "guest=q2,process=gi-q2", "-machine", "none", "-display", "none", "-monitor", "none", "-daemonize", "-pidfile"])
        .arg(vmdir.pidfile()));
    let guest = Guest::new(&env, "q2");
    assert!(guest.pid().is_some());
    let o = env.run(As::Remote(OWNER), &["stop", "q2", "--json"], b"");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("qmp.sock"), "{o:?}");
    assert!(guest.pid().is_some(), "stop without --force killed the guest");
    let j = env.run(As::Remote(OWNER), &["stop", "q2", "--force", "--json"], b"").ok().json();
    assert_eq!((j["running"].as_bool(), j["forced"].as_bool()), (Some(false), Some(true)), "{j}");
    assert!(guest.pid().is_none());
}
