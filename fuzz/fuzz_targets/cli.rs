//! Any argv: parsing never panics, and whatever it accepts holds only
//! validated values.
#![no_main]
use guest_installer::cli;
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data.split(|b| *b == 0).map(|a| OsString::from_vec(a.to_vec())).collect();
    let _ = cli::wants_json(&args);
    if let Ok(cmd) = cli::parse(&args) {
        if let Some(t) = cmd.target() {
            assert!(t.bytes().all(|b| b.is_ascii_graphic()), "unsafe target {t:?}");
        }
    }
});
