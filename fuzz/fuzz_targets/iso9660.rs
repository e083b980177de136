//! Our ISO 9660 reader on hostile images: an error or an extent inside
//! the image, never a panic or an out-of-range read.
#![no_main]
use guest_installer::iso9660::find;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    // Put the input where the volume descriptors and directories live.
    let mut img = vec![0u8; 16 * 2048];
    img.extend_from_slice(data);
    for path in ["/install.amd/preseed.img", "/preseed.cfg", "/a"] {
        if let Ok(e) = find(&mut Cursor::new(&img), path) {
            assert!(e.offset + e.len <= img.len() as u64);
        }
    }
});
