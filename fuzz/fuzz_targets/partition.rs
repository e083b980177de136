//! The partition-table reader on hostile disks (a build install's disk is
//! read back from a guest): an error or partitions inside the disk, never
//! a panic, an overflow or an endless chain.
#![no_main]
use guest_installer::template::partition::{is_ext4, partitions};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    // The input is the disk's first bytes; an MBR signature is supplied
    // half of the time so that the table itself gets exercised.
    let mut disk = data.to_vec();
    if disk.len() < 4096 {
        disk.resize(4096, 0);
    }
    if data.first().is_some_and(|b| b & 1 == 1) {
        disk[510] = 0x55;
        disk[511] = 0xAA;
    }
    let len = disk.len() as u64;
    let mut c = Cursor::new(disk);
    if let Ok(parts) = partitions(&mut c) {
        for p in &parts {
            assert!(p.start > 0 && p.start.checked_add(p.len).is_some_and(|e| e <= len), "{p:?} outside a {len}-byte disk");
            let _ = is_ext4(&mut c, p);
        }
    }
});
