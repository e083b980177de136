//! What the Ganeti tests share: the OS definition installed as the
//! package installs it, and the lock that keeps them from running at once.

use super::repo;
use std::fs;
use std::path::{Path, PathBuf};

/// One machine-wide lock for the tests that set up Ganeti here (a single
/// node, or two in namespaces): they never run at once.
pub fn ganeti_machine_lock() -> nix::fcntl::Flock<fs::File> {
    let f = fs::File::create("/run/lock/guest-installer-ganeti-test.lock").unwrap();
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap()
}

/// The package's OS definition (ganeti/os, installed by
/// debian/guest-installer-ganeti.install) in `dir`, with the program's path
/// replaced by `program` run with `config`; variants.list links where
/// debian/guest-installer-ganeti.links says, under `state` (the state dir
/// the config names) instead of /var/lib/guest-installer. Returns the
/// link's target.
pub fn install_os_definition(dir: &Path, program: &Path, config: &Path, state: &Path) -> PathBuf {
    const PROGRAM: &str = "/usr/sbin/guest-installer";
    fs::create_dir_all(dir).unwrap();
    let src = repo().join("ganeti/os");
    let mut names: Vec<String> = fs::read_dir(&src).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["create", "export", "ganeti_api_version", "import", "parameters.list", "rename", "verify"]);
    for n in &names {
        let text = fs::read_to_string(src.join(n)).unwrap();
        let script = text.starts_with("#!");
        if script {
            assert_eq!(text.matches(PROGRAM).count(), 1, "{n}: the program must be run exactly once");
        }
        let text = text.replace(PROGRAM, &format!("env GUEST_INSTALLER_CONFIG={} {}", config.display(), program.display()));
        let dst = dir.join(n);
        fs::write(&dst, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dst, fs::Permissions::from_mode(if script { 0o755 } else { 0o644 })).unwrap();
    }
    let links = fs::read_to_string(repo().join("debian/guest-installer-ganeti.links")).unwrap();
    let (target, link) = links.trim().split_once(' ').unwrap_or_else(|| panic!("one link: {links:?}"));
    assert_eq!(link, "usr/share/ganeti/os/guest-installer/variants.list", "{links}");
    let rel = target.strip_prefix("var/lib/guest-installer/").unwrap_or_else(|| panic!("the list is not in the state dir: {links}"));
    let target = state.join(rel);
    std::os::unix::fs::symlink(&target, dir.join("variants.list")).unwrap();
    target
}

