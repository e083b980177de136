//! How a clone boots: the boot loader the hypervisor runs (GRUB under
//! qemu, pvgrub2 under Xen) reads `/boot/grub/grub.cfg` from the guest's
//! own filesystem, and that file boots Debian's `/vmlinuz` and
//! `/initrd.img` links, which the kernel package moves on every kernel
//! install: the kernel a guest installs is the one it boots next, and the
//! host never chooses (or reads) a guest's kernel.
//!
//! Every boot also reports its kernel and command line on the console
//! (`gi-boot: ...`), where the owner sees it in `status`.

use super::{link, write, TemplateError, CLONE_ARGS};
use std::path::Path;

pub const GRUB_CFG_PATH: &str = "boot/grub/grub.cfg";

/// The boot menu written into every template.
pub fn grub_cfg() -> String {
    format!(
        "# guest-installer: read at every boot by the boot loader the hypervisor\n\
         # runs (GRUB under qemu, pvgrub2 under Xen), from this filesystem.\n\
         # /vmlinuz and /initrd.img follow the installed kernel package; edit the\n\
         # linux line to change the kernel command line.\n\
         set timeout=0\n\
         set default=0\n\
         if serial --unit=0 --speed=115200; then\n\
         \x20 terminal_input serial console\n\
         \x20 terminal_output serial console\n\
         fi\n\
         menuentry 'Debian GNU/Linux' {{\n\
         \x20 linux /vmlinuz {CLONE_ARGS}\n\
         \x20 initrd /initrd.img\n\
         }}\n"
    )
}

/// A small initrd (MODULES=list): only the modules that find and mount
/// the root disk under qemu (virtio) and Xen (blkfront). The boot loader
/// reads the initrd through the BIOS at every boot, which under emulation
/// costs time by the byte; Debian's default (MODULES=most) is 30 MB.
pub const INITRD_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "xen_blkfront", "ext4", "crc32c_generic"];
const INITRD_CONF: &str = "# guest-installer: the initrd holds only what finds the root disk\n\
# (listed in /usr/share/initramfs-tools/modules.d/guest-installer).\nMODULES=list\n";
/// Where initramfs-tools reads the two (relative to the root).
const INITRD_CONF_PATH: &str = "etc/initramfs-tools/conf.d/guest-installer";
const INITRD_MODULES_PATH: &str = "usr/share/initramfs-tools/modules.d/guest-installer";

fn initrd_modules_file() -> String {
    INITRD_MODULES.join("\n") + "\n"
}

/// mmdebstrap's hook after the essential packages, before the kernel
/// package makes the first initrd: the same two files [`install`] writes
/// (constant text, nothing of a request; none of it holds a quote).
pub fn essential_hook() -> String {
    let parent = |p: &str| p.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_owned());
    format!(
        "--essential-hook=mkdir -p \"$1/{}\" \"$1/{}\" && printf '%s' '{INITRD_CONF}' > \"$1/{INITRD_CONF_PATH}\" \
         && printf '%s' '{}' > \"$1/{INITRD_MODULES_PATH}\"",
        parent(INITRD_CONF_PATH),
        parent(INITRD_MODULES_PATH),
        initrd_modules_file(),
    )
}

pub const REPORT_SCRIPT: &str = "#!/bin/sh\n\
# guest-installer: which kernel this boot runs, and with what command line,\n\
# on the console at every boot.\n\
echo \"gi-boot: kernel $(uname -r) cmdline $(cat /proc/cmdline)\"\n";

pub const REPORT_UNIT: &str = "[Unit]\n\
Description=Report this boot's kernel on the console (guest-installer)\n\
DefaultDependencies=no\n\
After=systemd-remount-fs.service\n\
Before=sysinit.target\n\
\n\
[Service]\n\
Type=oneshot\n\
ExecStart=/usr/local/sbin/gi-boot-report\n\
StandardOutput=journal+console\n\
\n\
[Install]\n\
WantedBy=sysinit.target\n";

/// Writes the boot menu and the boot report into the tree, and points
/// `/vmlinuz` and `/initrd.img` at the one kernel `version` in /boot (as
/// the kernel package's own linux-update-symlinks does), whatever the
/// builder left there.
pub fn install(tree: &Path, version: &str) -> Result<(), TemplateError> {
    write(tree, GRUB_CFG_PATH, &grub_cfg(), 0o644)?;
    // The same small initrd for every kernel the guest installs later.
    write(tree, INITRD_CONF_PATH, INITRD_CONF, 0o644)?;
    write(tree, INITRD_MODULES_PATH, &initrd_modules_file(), 0o644)?;
    link(tree, "vmlinuz", &format!("boot/vmlinuz-{version}"))?;
    link(tree, "initrd.img", &format!("boot/initrd.img-{version}"))?;
    write(tree, "usr/local/sbin/gi-boot-report", REPORT_SCRIPT, 0o755)?;
    write(tree, "etc/systemd/system/gi-boot-report.service", REPORT_UNIT, 0o644)?;
    link(tree, "etc/systemd/system/sysinit.target.wants/gi-boot-report.service", "/etc/systemd/system/gi-boot-report.service")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hook (run as mmdebstrap runs it: `sh -c`, the root as `$1`)
    /// leaves exactly the initrd files the seal writes.
    #[test]
    fn the_essential_hook_writes_what_install_writes() {
        let d = tempfile::tempdir().unwrap();
        let (hooked, sealed) = (d.path().join("hooked"), d.path().join("sealed"));
        std::fs::create_dir_all(&hooked).unwrap();
        let hook = essential_hook();
        let cmd = hook.strip_prefix("--essential-hook=").unwrap();
        let o = std::process::Command::new("sh").arg("-c").arg(cmd).arg("sh").arg(&hooked).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        std::fs::create_dir_all(sealed.join("boot")).unwrap();
        install(&sealed, "6.1.0-test").unwrap();
        for p in [INITRD_CONF_PATH, INITRD_MODULES_PATH] {
            assert_eq!(std::fs::read_to_string(hooked.join(p)).unwrap(), std::fs::read_to_string(sealed.join(p)).unwrap(), "{p}");
        }
        assert!(std::fs::read_to_string(hooked.join(INITRD_MODULES_PATH)).unwrap().contains("xen_blkfront\n"));
    }
}
