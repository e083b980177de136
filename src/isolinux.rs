//! The static patch applied to an imported image's isolinux.cfg: a serial
//! console, and a new default label that boots the installer unattended
//! with our preseed from an extra initrd.
//!
//! Why not `preseed/file=/cdrom/preseed.cfg` on the kernel line, as the
//! seed did: Debian's netboot-flavour initrd (the one packaged in
//! debian-installer-12-netboot-amd64) cannot read the CD, and with that
//! argument it stops at a "Failed to retrieve the preconfiguration file"
//! dialog, which defeats an unattended install. Every d-i flavour loads
//! `/preseed.cfg` from its initramfs by itself, so the preseed travels as an
//! extra initrd; `/preseed.cfg` also stays on the CD for tools (and people)
//! that look for it there.

/// The label we add and make the default.
pub const LABEL: &str = "guest-installer";
/// The per-VM initrd that carries `/preseed.cfg`, loaded after the image's own.
pub const PRESEED_INITRD: &str = "/install.amd/preseed.img";

/// Directives that would stop our label booting at once (a menu UI, a
/// prompt, a timeout, another default) or fight our serial console.
const DROPPED: &[&str] = &["default", "ui", "prompt", "timeout", "totaltimeout", "ontimeout", "onerror", "serial", "console"];

/// Kernel arguments for the unattended installer; `kernel_initrd` is the
/// image's initrd path on the CD.
pub fn append_line(kernel_initrd: &str) -> String {
    format!(
        "auto=true priority=critical vga=normal fb=false \
         console=ttyS0,115200n8 initrd={kernel_initrd},{PRESEED_INITRD} --- console=ttyS0,115200n8"
    )
}

/// Patches Debian's isolinux.cfg. Top-level directives that would keep our
/// label from booting are dropped; everything else (paths, includes, the
/// original labels for a human at the console) is kept. Our `default`
/// comes last so that it wins over any `default` in an included file.
pub fn patch(original: &str, kernel: &str, initrd: &str) -> String {
    let mut out = String::with_capacity(original.len() + 512);
    // SYSLINUX wants SERIAL as the very first directive.
    out.push_str("serial 0 115200\n");
    for line in original.lines() {
        let word = line.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if DROPPED.contains(&word.as_str()) {
            out.push_str("# guest-installer dropped: ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!(
        "# guest-installer: boot the unattended installer at once\n\
         prompt 0\n\
         timeout 0\n\
         default {LABEL}\n\
         label {LABEL}\n\
         \tkernel {kernel}\n\
         \tappend {}\n",
        append_line(initrd)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "# D-I config version 2.0\npath \ninclude menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n";

    #[test]
    fn our_label_is_the_last_default_and_serial_comes_first() {
        let p = patch(DEBIAN, "/install.amd/vmlinuz", "/install.amd/initrd.gz");
        let directives: Vec<&str> = p.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
        assert_eq!(directives[0], "serial 0 115200");
        let defaults: Vec<&&str> = directives.iter().filter(|l| l.to_ascii_lowercase().starts_with("default")).collect();
        assert_eq!(defaults, vec![&"default guest-installer"]);
        assert!(p.contains("include menu.cfg\n"));
        assert!(p.contains("initrd=/install.amd/initrd.gz,/install.amd/preseed.img"));
        assert!(!p.contains("preseed/file="), "the netboot initrd would stop at an error dialog");
        assert!(p.contains("auto=true priority=critical"));
    }

    #[test]
    fn patch_of_any_input_keeps_lines_and_ends_with_our_label() {
        for input in ["", "\n\n", "DEFAULT x\nUI menu.c32\n", "label a\n  kernel b\n", "\r\nserial 1 9600\r\n"] {
            let p = patch(input, "/k", "/i");
            assert_eq!(p.lines().count(), 1 + input.lines().count() + 7);
            assert!(p.ends_with(&format!("\tappend {}\n", append_line("/i"))));
            assert!(!p.lines().any(|l| l.trim().eq_ignore_ascii_case("default x")));
        }
    }
}
