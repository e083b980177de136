//! The isolinux.cfg patcher: any input keeps its lines and ends with our
//! label as the last default.
#![no_main]
use guest_installer::isolinux::{append_line, patch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let p = patch(s, "/install.amd/vmlinuz", "/install.amd/initrd.gz");
    assert!(p.starts_with("serial 0 115200\n"));
    assert!(p.ends_with(&format!("\tappend {}\n", append_line("/install.amd/initrd.gz"))));
    assert_eq!(p.lines().count(), 1 + s.lines().count() + 7);
    let last_default = p
        .lines()
        .filter(|l| l.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("default")))
        .last();
    assert_eq!(last_default, Some("default guest-installer"));
});
