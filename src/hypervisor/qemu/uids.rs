//! One uid per running guest. A guest that escapes into its qemu must not
//! reach a sibling's: with one shared uid it could open another qemu's
//! `/proc/PID/fd/N` (its kernel and initrd, which for an installer hold
//! the preseed and root hash) or read its memory. Each guest's qemu runs
//! as a uid of its own from the configured range (`hypervisor.qemu_uids`),
//! chosen when it starts: the lowest one that no guest running or being
//! started has. The choice is recorded in the VM's directory (`qemu.uid`)
//! under a lock held only while choosing; a guest counts as being started
//! while its record is younger than the time a start may take (so a
//! killed start holds its uid no longer than that).

use crate::config::QemuUids;
use crate::fsutil;
use crate::lock::{self, LockError};
use crate::state::VmDir;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The file in a VM's directory that records its qemu's uid.
pub const UID_FILE: &str = "qemu.uid";
/// How long one start waits for another to finish choosing (it takes
/// milliseconds).
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Picks the lowest uid of `range` that no guest under `vms_dir` running,
/// or started within `start_limit`, has, and records it for `vm`.
pub fn allocate(range: QemuUids, vms_dir: &Path, lock_path: &Path, vm: &VmDir, start_limit: Duration) -> io::Result<u32> {
    if let Some(dir) = lock_path.parent() {
        fsutil::ensure_dir(dir, 0o700)?;
    }
    let _held = match lock::lock_within(lock_path, LOCK_WAIT) {
        Ok(l) => l,
        Err(LockError::Held) => return Err(io::Error::other("another guest's start is choosing a uid; try again")),
        Err(LockError::Io(e)) => return Err(io::Error::other(e.to_string())),
    };
    let used = in_use(vms_dir, vm, start_limit)?;
    let uid = (range.base + 1..=range.base + range.count)
        .find(|u| !used.contains(u))
        .ok_or_else(|| io::Error::other(format!("all {} uids of hypervisor.qemu_uids are in use by running guests", range.count)))?;
    fsutil::write_atomic(&vm.dir.join(UID_FILE), format!("{uid}\n").as_bytes(), 0o600)?;
    Ok(uid)
}

/// The uids of the other guests that run now (their supervisor holds the
/// pidfile) or are being started.
fn in_use(vms_dir: &Path, vm: &VmDir, start_limit: Duration) -> io::Result<BTreeSet<u32>> {
    let mut used = BTreeSet::new();
    let entries = match std::fs::read_dir(vms_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(used),
        Err(e) => return Err(e),
    };
    for e in entries {
        let dir = e?.path();
        if dir == vm.dir {
            continue;
        }
        let other = VmDir { dir };
        let record = other.dir.join(UID_FILE);
        let starting = || {
            std::fs::symlink_metadata(&record)
                .and_then(|m| m.modified())
                .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() < start_limit)
        };
        if !super::supervisor::supervising(&other.pidfile()) && !starting() {
            continue;
        }
        // Ours, small, root's: a missing or odd one (a guest started before
        // uids were per guest) takes no uid of the range.
        if let Some(uid) = fsutil::read_text(&record, 32).ok().and_then(|t| t.trim().parse().ok()) {
            used.insert(uid);
        }
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_gets_the_lowest_uid_no_running_or_starting_guest_has() {
        let d = tempfile::tempdir().unwrap();
        let vms = d.path().join("vms");
        let dir = |n: &str| {
            let v = VmDir { dir: vms.join(n) };
            std::fs::create_dir_all(&v.dir).unwrap();
            v
        };
        let (a, b, c) = (dir("a"), dir("b"), dir("c"));
        let range = QemuUids { base: 100_000, count: 2 };
        // (Its directory is made if missing.)
        let lock = d.path().join("locks/uids.lock");
        let long = Duration::from_secs(600);
        assert_eq!(allocate(range, &vms, &lock, &a, long).unwrap(), 100_001);
        assert_eq!(std::fs::read_to_string(a.dir.join(UID_FILE)).unwrap(), "100001\n");
        // a is being started: b gets the next; c none (the range is full).
        assert_eq!(allocate(range, &vms, &lock, &b, long).unwrap(), 100_002);
        assert!(allocate(range, &vms, &lock, &c, long).is_err());
        // Starts that took longer than a start may take are over: their
        // guests are not running (no supervisor holds a pidfile).
        assert_eq!(allocate(range, &vms, &lock, &c, Duration::ZERO).unwrap(), 100_001);
        // a runs (its pidfile is held, as a supervisor holds it): taken
        // however old its record.
        std::fs::write(a.pidfile(), "1\n").unwrap();
        let _running = nix::fcntl::Flock::lock(std::fs::File::open(a.pidfile()).unwrap(), nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
        assert_eq!(allocate(range, &vms, &lock, &c, Duration::ZERO).unwrap(), 100_002);
    }
}
