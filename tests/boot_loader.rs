//! Machines boot from their own disk and their own kernel, under qemu (TCG
//! here), with the real template and the real binary:
//!
//! 1. a clone reaches its login prompt through the boot code in its own
//!    disk (`-boot c`: the firmware runs GRUB from the disk's MBR gap,
//!    which reads the clone's own /boot/grub/grub.cfg: only GRUB sets
//!    `BOOT_IMAGE=`; nothing of the host's is booted); `reboot` makes the
//!    guest reboot itself and it comes back to a login prompt with its
//!    identity (applied once); `stop` shuts it down cleanly; the kernel
//!    command line is changed in the stopped clone's own grub.cfg (debugfs
//!    on its raw volume's partition) and after `start` the console shows
//!    the changed /proc/cmdline;
//! 2. an installer-path machine (the busybox fake installer writing a
//!    BIOS-bootable disk) is `start`ed after its install and boots from
//!    its disk (`-boot c`, no CD); it ignores the power button, so `stop
//!    --force` destroys it after `[timeouts] stop_s`.
//!
//! Each guest is stopped as soon as its assertions hold (and by a Drop
//! guard on failure). Bounds only kill a hung guest.
//!
//! Needs (scripts/setup.sh): qemu-system-x86, qemu-utils, grub-pc-bin,
//! e2fsprogs, mmdebstrap and a reachable Debian archive (the template, built
//! once per run and cached), busybox-static, xorriso, isolinux.

mod common;

use common::*;

use guest_installer::template;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

/// A guest that has not reached what we wait for by then is hung.
const BOUND: Duration = Duration::from_secs(600);

/// An Env with the qemu driver and `stop_s` set.
fn qemu_env(stop_s: u64) -> Env {
    let env = Env::new();
    env.use_qemu();
    let text = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, text.replace("hypervisor_s = 10\n", &format!("hypervisor_s = 10\nstop_s = {stop_s}\n"))).unwrap();
    env
}

/// Waits until `done` holds for the VM's console; panics with its tail
/// after BOUND, or at once if `bad` shows.
fn wait_console(env: &Env, vm: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let t0 = Instant::now();
    loop {
        let c = console(env, vm);
        assert!(!c.contains(template::REFUSED_LINE), "{vm} refused its seed:\n{}", readable_tail(&c, 40));
        if done(&c) {
            eprintln!("{vm}: {what} after {:.1} s", t0.elapsed().as_secs_f64());
            return c;
        }
        assert!(t0.elapsed() < BOUND, "{vm}: no {what} within {BOUND:?}:\n{}", readable_tail(&c, 40));
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The `gi-boot:` lines (one per boot) on a console.
fn boot_lines(c: &str) -> Vec<String> {
    c.split(['\n', '\r'])
        .map(guest_installer::console::clean_line)
        .filter_map(|l| l.find("gi-boot: kernel ").map(|p| l[p..].to_owned()))
        .collect()
}

fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    env.run(As::Remote(OWNER), args, b"").ok().json()
}

/// Replaces the clone's /boot/grub/grub.cfg on its stopped raw volume with
/// debugfs (the host writes it here as an admin would; the program never
/// reads a guest's filesystem).
fn edit_grub_cfg(volume: &Path, edit: impl Fn(&str) -> String) {
    let fs = root_fs(volume);
    let old = sh(Command::new("debugfs").arg("-R").arg("cat /boot/grub/grub.cfg").arg(&fs));
    let new = edit(&old);
    assert_ne!(old, new);
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("grub.cfg");
    fs::write(&f, &new).unwrap();
    let cmds = d.path().join("cmds");
    fs::write(&cmds, format!("rm /boot/grub/grub.cfg\nwrite {} /boot/grub/grub.cfg\nsif /boot/grub/grub.cfg mode 0100644\n", f.display()))
        .unwrap();
    sh(Command::new("debugfs").arg("-w").arg("-f").arg(&cmds).arg(&fs));
    assert_eq!(sh(Command::new("debugfs").arg("-R").arg("cat /boot/grub/grub.cfg").arg(&fs)), new);
}

#[test]
fn clone_boots_its_own_kernel_reboots_stops_and_starts_with_an_edited_command_line() {
    let env = qemu_env(300);
    add_template(&env);
    let vol = env.volume_sized("bl1", 3 << 30);
    env.machine_with("bl1", 21, None, &["memory=512", &format!("disk={}", vol.display())]);
    let guest = Guest::new(&env, "bl1");
    let j = env.run(As::Remote(OWNER), &["install", "bl1", "hostname=gi-loader", "template=tpl", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing", "{j}");
    // qemu boots the disk, and nothing of the host's or the template's.
    let cfg = fs::read_to_string(env.vm_file("bl1", "domain.cfg")).unwrap();
    assert_eq!(cfg.lines().skip_while(|l| *l != "-boot").nth(1), Some("c"), "{cfg}");
    assert!(!cfg.contains("-kernel") && !cfg.contains("-initrd") && !cfg.contains("-append") && !cfg.contains("templates/"), "{cfg}");
    assert!(!env.state.join("boot/grub-i386-pc.bin").exists(), "the host's GRUB image was made for a whole-disk clone");

    let login = "gi-loader login:";
    let c = wait_console(&env, "bl1", "first login prompt", |c| c.contains(login));
    let boots = boot_lines(&c);
    assert_eq!(boots.len(), 1, "{boots:?}");
    assert!(boots[0].contains("cmdline BOOT_IMAGE=/vmlinuz root=LABEL=gi-root"), "not booted by GRUB from /vmlinuz: {boots:?}");
    // A clone in use whose identity applied is a finished install: cancel
    // refuses it and leaves the guest running (the lifecycle settles first).
    let o = env.run(As::Remote(OWNER), &["cancel", "bl1", "--json"], b"");
    assert_eq!(o.code, 2, "{o:?}");
    assert!(guest.pid().is_some(), "cancel stopped a finished clone");
    assert_eq!(json(&env, &["status", "bl1", "--json"])["state"], "installed");

    // A reboot by the guest itself comes back through the boot loader,
    // with its identity, which is not applied again.
    let j = json(&env, &["reboot", "bl1", "--json"]);
    assert_eq!(j["running"], true, "{j}");
    let c = wait_console(&env, "bl1", "login prompt after reboot", |c| c.matches(login).count() >= 2);
    assert_eq!(boot_lines(&c).len(), 2, "{:?}", boot_lines(&c));
    assert_eq!(c.matches(template::APPLIED_LINE).count(), 1, "identity applied again:\n{}", readable_tail(&c, 40));
    assert!(c.contains("reboot: Restarting system"), "not the guest's own reboot:\n{}", readable_tail(&c, 60));

    // A clean shutdown (the guest powers itself off on the power button).
    let j = json(&env, &["stop", "bl1", "--json"]);
    assert_eq!((j["running"].as_bool(), j["forced"].as_bool()), (Some(false), Some(false)), "{j}");
    assert!(guest.pid().is_none());
    assert!(console(&env, "bl1").contains("reboot: Power down"), "{}", readable_tail(&console(&env, "bl1"), 30));

    // The owner's edit of the clone's own boot menu is what boots next.
    edit_grub_cfg(&vol, |t| t.replace(" quiet ", " quiet gi.test=edited-offline "));
    let j = json(&env, &["start", "bl1", "--json"]);
    assert_eq!(j["running"], true, "{j}");
    let cfg = fs::read_to_string(env.vm_file("bl1", "domain.cfg")).unwrap();
    assert!(!cfg.contains("identity.img"), "a started clone still names its seed:\n{cfg}");
    let c = wait_console(&env, "bl1", "login prompt after start", |c| c.contains(login));
    let boots = boot_lines(&c);
    assert_eq!(boots.len(), 1, "{boots:?}");
    assert!(boots[0].contains("gi.test=edited-offline"), "{boots:?}");
    let j = json(&env, &["stop", "bl1", "--force", "--json"]);
    assert_eq!(j["running"], false, "{j}");
    assert!(guest.pid().is_none());
}

#[test]
fn installed_system_is_started_from_its_own_disk() {
    let env = qemu_env(5);
    env.import_busybox_installer(&["--bootable-disk".as_ref()]);
    env.machine("sys1", 22, Some("fake"));
    let guest = Guest::new(&env, "sys1");
    env.run(As::Remote(OWNER), &["install", "sys1", "hostname=gi-sys", "--json"], PW_HASH.as_bytes()).ok();
    let t0 = Instant::now();
    let s = loop {
        let s = json(&env, &["status", "sys1", "--json"]);
        if s["state"] != "installing" {
            break s;
        }
        assert!(t0.elapsed() < BOUND, "install did not end:\n{}", readable_tail(&console(&env, "sys1"), 30));
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(s["state"], "installed", "{s}\n{}", readable_tail(&console(&env, "sys1"), 30));
    assert!(console(&env, "sys1").contains("GI-FAKE-INSTALLER: disk written"));

    let j = json(&env, &["start", "sys1", "--json"]);
    assert_eq!(j["running"], true, "{j}");
    let cfg = fs::read_to_string(env.vm_file("sys1", "domain.cfg")).unwrap();
    let boot = cfg.lines().skip_while(|l| *l != "-boot").nth(1);
    assert_eq!(boot, Some("c"), "{cfg}");
    assert!(!cfg.contains("media=cdrom") && !cfg.contains("-kernel") && !cfg.contains("-no-reboot"), "{cfg}");
    let c = wait_console(&env, "sys1", "login prompt from its disk", |c| c.contains("gi-sys login:"));
    assert!(c.contains("GI-FAKE-SYSTEM: booted from disk"), "{}", readable_tail(&c, 20));
    assert!(!c.contains("GI-FAKE-INSTALLER"), "the installer ran again:\n{}", readable_tail(&c, 20));

    // It ignores the power button: --force destroys it after stop_s.
    let j = json(&env, &["stop", "sys1", "--force", "--json"]);
    assert_eq!((j["running"].as_bool(), j["forced"].as_bool()), (Some(false), Some(true)), "{j}");
    assert!(guest.pid().is_none());
}
