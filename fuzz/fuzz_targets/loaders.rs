//! The registry, state and manifest loaders: a corrupt or hand-edited file
//! is an error, never a panic, and what loads re-serialises to the same.
#![no_main]
use guest_installer::image::Manifest;
use guest_installer::registry::Machine;
use guest_installer::state::VmState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Machine>(data) {
        let again: Machine = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(again, m);
    }
    if let Ok(s) = serde_json::from_slice::<VmState>(data) {
        let again: VmState = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }
    let _ = serde_json::from_slice::<Manifest>(data);
});
