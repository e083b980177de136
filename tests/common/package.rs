//! The Debian package as the tests that install it share it: built once
//! per source tree (by the operator guide's own build command, in a copy
//! of the tree) and cached, one such test on the machine at a time, and
//! the machine put back as it was whatever happens.

use super::realm::run_bounded;
use super::{cache_dir, cached, guide, repo, Out};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const PKG: &str = "guest-installer";
/// The Ganeti OS definition, built from the same source.
pub const GANETI_PKG: &str = "guest-installer-ganeti";

/// Everything the package puts on the machine (or makes in postinst).
pub const PATHS: &[&str] = &[
    "/usr/sbin/guest-installer",
    "/etc/guest-installer",
    "/etc/remctl/conf.d/guest-installer",
    "/etc/remctl/acl/guest-installer-admins",
    "/var/lib/guest-installer",
    "/usr/share/doc/guest-installer",
    "/usr/share/man/man8/guest-installer.8.gz",
    "/usr/lib/systemd/system/guest-installer-settle.service",
    "/usr/lib/systemd/system/guest-installer-settle.timer",
    "/etc/systemd/system/timers.target.wants/guest-installer-settle.timer",
    "/usr/share/ganeti/os/guest-installer",
    "/usr/share/doc/guest-installer-ganeti",
    // The console door.
    "/usr/sbin/guest-installer-console",
    "/usr/share/guest-installer",
    "/usr/share/man/man8/guest-installer-console.8.gz",
    "/usr/lib/systemd/system/guest-installer-console.socket",
    "/usr/lib/systemd/system/guest-installer-console@.service",
    "/etc/systemd/system/sockets.target.wants/guest-installer-console.socket",
    // remctld's units (shipped disabled; the guide enables them).
    "/usr/lib/systemd/system/guest-installer-remctld.socket",
    "/usr/lib/systemd/system/guest-installer-remctld.service",
    "/etc/systemd/system/sockets.target.wants/guest-installer-remctld.socket",
];

pub fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env("DEBIAN_FRONTEND", "noninteractive").env("LC_ALL", "C.UTF-8");
    c
}

pub fn must(c: Command, limit: Duration) -> Out {
    let desc = format!("{c:?}");
    let out = run_bounded(c, b"", limit);
    assert_eq!(out.code, 0, "{desc} failed:\n{}\n{}", out.stdout, out.stderr);
    out
}

/// Installed packages: "name:arch version" lines.
pub fn installed_packages() -> BTreeSet<String> {
    let out = must(cmd("dpkg-query", &["-W", "-f", "${db:Status-Abbrev} ${binary:Package} ${Version}\\n"]), Duration::from_secs(60));
    out.stdout.lines().filter(|l| !l.starts_with("un ") && !l.starts_with("pn ")).map(str::to_owned).collect()
}

pub fn package_state(name: &str) -> String {
    let out = run_bounded(cmd("dpkg-query", &["-W", "-f", "${db:Status-Status}", name]), b"", Duration::from_secs(60));
    if out.code == 0 { out.stdout.trim().to_owned() } else { "not-installed".into() }
}

pub fn apt_get(args: &[&str]) -> Command {
    let mut c = cmd("apt-get", &["-y", "-q", "-o", "DPkg::Lock::Timeout=300"]);
    c.args(args);
    c
}

/// Asserts that neither package nor anything in [`PATHS`] is on the
/// machine: what the test installs it may then remove.
pub fn assert_not_installed() {
    for pkg in [PKG, GANETI_PKG] {
        assert_eq!(package_state(pkg), "not-installed", "{pkg} is installed on this machine; this test installs and purges it");
    }
    for p in PATHS {
        assert!(Path::new(p).symlink_metadata().is_err(), "{p} exists before the test; the test would remove it: move it away");
    }
}

/// Puts the machine back as it was: our package purged, any package the
/// test pulled in purged, nothing of ours left. Runs on drop, so also when
/// an assertion fails halfway.
pub struct Restore {
    pub packages_before: BTreeSet<String>,
}

impl Restore {
    /// After [`assert_not_installed`].
    pub fn new() -> Restore {
        Restore { packages_before: installed_packages() }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        for pkg in [GANETI_PKG, PKG] {
            if package_state(pkg) != "not-installed" {
                let out = run_bounded(apt_get(&["purge", pkg]), b"", Duration::from_secs(600));
                if out.code != 0 {
                    problems.push(format!("apt-get purge {pkg}: {}", out.stderr));
                }
            }
        }
        let new: Vec<String> = installed_packages()
            .difference(&self.packages_before)
            .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
            .collect();
        if !new.is_empty() {
            let mut args = vec!["purge"];
            args.extend(new.iter().map(String::as_str));
            let out = run_bounded(apt_get(&args), b"", Duration::from_secs(600));
            if out.code != 0 {
                problems.push(format!("apt-get purge {new:?}: {}", out.stderr));
            }
        }
        for p in PATHS {
            // None of them existed before the test (checked), so whatever
            // is there now is ours.
            let p = Path::new(p);
            if p.is_dir() {
                let _ = fs::remove_dir_all(p);
            } else if p.symlink_metadata().is_ok() {
                let _ = fs::remove_file(p);
            }
        }
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("could not restore the machine: {problems:?}");
        }
    }
}

/// One package test on the machine at a time (it installs system-wide).
pub fn machine_lock() -> nix::fcntl::Flock<fs::File> {
    let f = fs::File::create("/run/lock/guest-installer-package-test.lock")
        .or_else(|_| fs::File::create("/tmp/guest-installer-package-test.lock"))
        .unwrap();
    let mut f = Some(f);
    let t = Instant::now();
    loop {
        match nix::fcntl::Flock::lock(f.take().unwrap(), nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => return l,
            Err((back, _)) => {
                assert!(t.elapsed() < Duration::from_secs(1800), "another package test held the machine for 30 minutes");
                f = Some(back);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// The files of the source tree as git sees them (tracked and untracked,
/// not the ignored ones such as target/), relative to the checkout.
fn source_files() -> Vec<String> {
    let out = must(cmd("git", &["-C", repo().to_str().unwrap(), "ls-files", "-z", "-c", "-o", "--exclude-standard"]), Duration::from_secs(60));
    let mut files: Vec<String> = out.stdout.split('\0').filter(|s| !s.is_empty() && repo().join(s).is_file()).map(str::to_owned).collect();
    files.sort();
    files
}

/// The built packages of this source tree.
pub struct Built {
    /// Holds the .debs, the .changes and `src/`, the tree they were built
    /// from (so `../NAME.deb` from `src/` is a built package, as in the
    /// guide).
    pub dir: PathBuf,
    pub version: String,
    pub arch: String,
}

impl Built {
    pub fn src(&self) -> PathBuf {
        self.dir.join("src")
    }
    pub fn deb(&self) -> String {
        format!("{PKG}_{}_{}.deb", self.version, self.arch)
    }
    pub fn ganeti_deb(&self) -> String {
        format!("{GANETI_PKG}_{}_all.deb", self.version)
    }
    pub fn changes(&self) -> PathBuf {
        self.dir.join(format!("{PKG}_{}_{}.changes", self.version, self.arch))
    }
}

/// The packages built from a copy of the source tree by the guide's own
/// build command (section 2), once per tree: the cache is keyed by every
/// file's name and contents (but the tests'), so a changed file builds
/// again. Compiled
/// crates are kept between runs in the fixture cache; the checkout's
/// target/ is not touched.
pub fn built() -> Built {
    let files = source_files();
    let mut h = Sha256::new();
    // Not tests/: no package file comes from there, and a test being
    // edited should not build the package again.
    for rel in files.iter().filter(|f| !f.starts_with("tests/")) {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(fs::read(repo().join(rel)).unwrap());
        h.update([0]);
    }
    let key: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = cached(&format!("deb-{key}"), |out| {
        let src = out.join("src");
        for rel in &files {
            let to = src.join(rel);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(repo().join(rel), &to).unwrap();
        }
        assert!(files.len() > 10 && src.join("debian/rules").exists(), "copied only {} files", files.len());
        let build = guide::commands(&guide::sh_block("2. Install the package", 0))
            .into_iter()
            .filter(|c| c.starts_with("dpkg-buildpackage "))
            .collect::<Vec<_>>();
        assert_eq!(build.len(), 1, "the guide's section 2 builds with one dpkg-buildpackage command: {build:?}");
        let t = Instant::now();
        let mut c = cmd("bash", &["-euo", "pipefail", "-c", &build[0]]);
        c.current_dir(&src).env("CARGO_TARGET_DIR", cache_dir().join("package-target")).env("DEB_BUILD_OPTIONS", "parallel=2");
        let out = run_bounded(c, b"", Duration::from_secs(1800));
        if out.code != 0 {
            let log = format!("{}{}", out.stdout, out.stderr);
            let tail: Vec<&str> = log.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("{} failed (exit {}); the end of its output:\n{}", build[0], out.code, tail.join("\n"));
        }
        println!("{}: {:.1} s", build[0], t.elapsed().as_secs_f64());
    });
    let changelog = dir.join("src/debian/changelog");
    let version = must(cmd("dpkg-parsechangelog", &["-l", changelog.to_str().unwrap(), "-S", "Version"]), Duration::from_secs(30)).stdout.trim().to_owned();
    let arch = must(cmd("dpkg", &["--print-architecture"]), Duration::from_secs(30)).stdout.trim().to_owned();
    Built { dir, version, arch }
}
