//! The password line from stdin: whatever arrives, the result is an error
//! or a crypt hash of the crypt alphabet, never anything that could break
//! the preseed line it goes into. (Slow: cleartext is SHA-512-crypted.)
#![no_main]
use guest_installer::secret::CryptHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pw) = CryptHash::from_line(data) {
        // The crypt alphabet, the `$` separators and `rounds=`.
        assert!(pw.expose().bytes().all(|b| b.is_ascii_alphanumeric() || b"./$=".contains(&b)), "unsafe hash");
    }
});
