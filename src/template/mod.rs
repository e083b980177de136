//! Golden templates (the fast path): a sealed Debian root filesystem built
//! once per image, stored as a raw ext4 image beside the kernel and initrd
//! found inside it; and the per-VM identity seed that the template's
//! first-boot unit applies to a clone.
//!
//! Two builders make the root tree, behind one interface ([`Builder`]):
//! [`mmdebstrap`] from the configured mirror, and [`installer`], our own
//! preseeded install run in a registered machine and read back from its
//! disk. Both end in the same step ([`finish`]): seal the tree, find the
//! kernel and initrd, `mke2fs -d`, digests, manifest.
//!
//! Layout: `STATE/templates/T/{manifest.json,root.img,vmlinuz,initrd.img}`,
//! all read-only. A build happens in `STATE/.template-T-*` and is renamed
//! into place only when complete, so a failed or killed build leaves no
//! template behind (its leftovers are cleared by the next build).
//!
//! A clone goes onto the machine's own volume ([`clone`]: a qcow2 overlay
//! of `root.img` or a sparse copy) plus a small raw disk holding the
//! identity seed (`vms/VM/identity.img`); nothing is mounted.

pub mod boot;
pub mod clone;
pub mod installer;
pub mod mmdebstrap;
pub mod partition;
pub mod readback;

use crate::exec::{self, ExecError};
use crate::fsutil;
use crate::secret::CryptHash;
use crate::types::{DomainName, Hostname, ImageName, Network, Rule};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The guest side of the identity seed, baked into every template.
pub const IDENTITY_SCRIPT: &str = include_str!("gi-identity");
pub const IDENTITY_UNIT: &str = include_str!("gi-identity.service");
/// First line of a seed; the script refuses anything else.
pub const SEED_MAGIC: &str = "guest-installer-identity 1";
/// What the identity unit prints on the console when done, or refusing.
pub const APPLIED_LINE: &str = "gi-identity: applied";
pub const REFUSED_LINE: &str = "gi-identity: REFUSED";
/// The seed disk's size (the script reads at most 64 KiB of it).
/// (64 KiB: the kernel's partition scan expects more than a few sectors.)
const SEED_BYTES: usize = 64 * 1024;
/// The root filesystem's label (fstab and the kernel's root= use it).
pub const ROOT_LABEL: &str = "gi-root";
/// Size of the template's ext4 image (sparse).
const ROOT_SIZE: &str = "2G";
/// Used when the image does not say which release it installs.
pub const DEFAULT_SUITE: &str = "bookworm";
/// Kernel arguments for a clone, in the template's grub.cfg: the root by
/// label, and a console on qemu's serial port and on Xen's PV console
/// (whichever exists; the last one present is /dev/console).
pub const CLONE_ARGS: &str = "root=LABEL=gi-root rw quiet console=ttyS0,115200n8 console=hvc0";

/// What the template holds beyond minbase.
pub const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "initramfs-tools",
    "zstd",
    "systemd-sysv",
    "udev",
    "iproute2",
    "openssh-server",
    "netbase",
    "passwd",
    "e2fsprogs",
    // systemd-logind needs the bus; it turns the hypervisor's power
    // button (`stop`) into a clean shutdown.
    "dbus",
];

/// Units masked in the template: slow or useless on a first boot under
/// emulation (measured: e2scrub_reap alone cost 24 s), and timers.
const MASKED: &[&str] = &[
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "getty-static.service",
    "getty@tty1.service",
    "systemd-networkd-wait-online.service",
];

/// Changes whenever what a build produces changes (tests key their cache
/// on it).
pub fn build_key() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let grub = boot::grub_cfg();
    for part in [IDENTITY_SCRIPT, IDENTITY_UNIT, &PACKAGES.join(","), &MASKED.join(","), SEAL_VERSION, &grub, boot::REPORT_SCRIPT, boot::REPORT_UNIT, boot::ESSENTIAL_HOOK, &boot::INITRD_MODULES.join(",")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}
const SEAL_VERSION: &str = "seal-3";

pub use crate::types::TemplateName;

/// A Debian suite (codename) we build for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Suite(String);

const SUITES: &[(&str, &str)] = &[("10", "buster"), ("11", "bullseye"), ("12", "bookworm"), ("13", "trixie")];

impl Suite {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        if SUITES.iter().any(|(_, c)| *c == s) {
            Ok(Suite(s.to_owned()))
        } else {
            Err(Rule("must be a known Debian codename (buster, bullseye, bookworm, trixie)"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The suite an installer image installs, from its `.disk/info`
    /// (`Debian GNU/Linux 12.0.0 "Bookworm" - Official amd64 NETINST ...`):
    /// the quoted codename, or else the major version. None if neither is
    /// there or known.
    pub fn from_disk_info(info: &str) -> Option<Suite> {
        if let Some(q) = info.split('"').nth(1) {
            if let Ok(s) = Suite::parse(&q.to_ascii_lowercase()) {
                return Some(s);
            }
        }
        let ver = info.strip_prefix("Debian GNU/Linux ")?.split(['.', ' ']).next()?;
        SUITES.iter().find(|(v, _)| *v == ver).map(|(_, c)| Suite((*c).to_owned()))
    }
}

impl TryFrom<String> for Suite {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Suite::parse(&s).map_err(|r| r.0.to_owned())
    }
}
impl From<Suite> for String {
    fn from(s: Suite) -> String {
        s.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: TemplateName,
    pub image: ImageName,
    pub suite: Suite,
    pub mirror: String,
    pub builder: String,
    pub built_at: u64,
    pub build_key: String,
    /// `name version` of every installed package.
    pub packages: Vec<String>,
    pub root: FileDigest,
    pub kernel: FileDigest,
    pub initrd: FileDigest,
    pub kernel_version: String,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

impl Template {
    pub fn root(&self) -> PathBuf {
        self.dir.join(&self.manifest.root.file)
    }
    pub fn kernel(&self) -> PathBuf {
        self.dir.join(&self.manifest.kernel.file)
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join(&self.manifest.initrd.file)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {0} does not exist (see `guest-installer templates`)")]
    NotFound(TemplateName),
    #[error("template {0} already exists")]
    Exists(TemplateName),
    #[error("another template build is in progress; try again when it has finished")]
    Busy,
    #[error("mmdebstrap failed: {0}")]
    Bootstrap(ExecError),
    #[error("{0}")]
    MachineBusy(String),
    #[error("the install into the build machine failed: {0}")]
    Install(String),
    #[error("cannot read the installed system from the build machine's disk {disk}: {message}")]
    Disk { disk: String, message: String },
    #[error("cannot copy the installed system out of its filesystem: {0}")]
    Extract(#[from] readback::ReadbackError),
    #[error("mke2fs failed: {0}")]
    Mkfs(ExecError),
    #[error("the built system is not usable: {0}")]
    Layout(String),
    #[error("manifest {path} is corrupt ({message}); an admin must remove the template and build it again")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write the template under {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TemplateError {
    let path = path.to_path_buf();
    move |source| TemplateError::Io { path, source }
}

const MAX_MANIFEST_BYTES: u64 = 1 << 20;

pub fn load(templates_dir: &Path, name: &TemplateName) -> Result<Template, TemplateError> {
    let dir = templates_dir.join(name.as_str());
    let path = dir.join("manifest.json");
    let bytes = match fsutil::read_limited(&path, MAX_MANIFEST_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(TemplateError::NotFound(name.clone())),
        Err(source) => return Err(TemplateError::Io { path, source }),
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| TemplateError::Corrupt { path: path.clone(), message: e.to_string() })?;
    if manifest.name != *name {
        return Err(TemplateError::Corrupt { path, message: "its name does not match its directory".into() });
    }
    for f in [&manifest.root.file, &manifest.kernel.file, &manifest.initrd.file] {
        if f.is_empty() || f.contains('/') || f.starts_with('.') {
            return Err(TemplateError::Corrupt { path, message: "a file name is not a plain name".into() });
        }
    }
    Ok(Template { manifest, dir })
}

pub fn list(templates_dir: &Path) -> Result<Vec<Template>, TemplateError> {
    let entries = match fs::read_dir(templates_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(TemplateError::Io { path: templates_dir.into(), source }),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if let Some(name) = e.file_name().to_str().and_then(|n| TemplateName::parse(n).ok()) {
            out.push(load(templates_dir, &name)?);
        }
    }
    out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    Ok(out)
}

/// Which builder made a template (recorded in its manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuilderKind {
    #[default]
    Mmdebstrap,
    Installer,
}

impl BuilderKind {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        match s {
            "mmdebstrap" => Ok(BuilderKind::Mmdebstrap),
            "installer" => Ok(BuilderKind::Installer),
            _ => Err(Rule("must be mmdebstrap or installer")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BuilderKind::Mmdebstrap => "mmdebstrap",
            BuilderKind::Installer => "installer",
        }
    }
}

/// Makes a template's root tree; the rest of a build is shared.
pub trait Builder {
    fn kind(&self) -> BuilderKind;
    /// Fills `tree` (which does not exist yet) with a Debian root
    /// filesystem, using `work` (the hidden build directory) for scratch
    /// files. Nothing needs to be sealed yet.
    fn make_tree(&self, work: &Path, tree: &Path) -> Result<(), TemplateError>;
}

pub struct BuildRequest<'a> {
    pub name: &'a TemplateName,
    pub image: &'a ImageName,
    pub suite: Suite,
    /// `http://HOST/DIR`, from the config.
    pub mirror: String,
    pub mke2fs: &'a Path,
    pub umount: &'a Path,
    pub timeout: Duration,
    pub locks_dir: &'a Path,
}

/// Builds `templates_dir/NAME` with `builder`.
pub fn build(templates_dir: &Path, req: &BuildRequest, builder: &dyn Builder) -> Result<Manifest, TemplateError> {
    let state_dir = templates_dir
        .parent()
        .ok_or_else(|| TemplateError::Io { path: templates_dir.into(), source: io::Error::other("no parent") })?;
    let final_dir = templates_dir.join(req.name.as_str());
    if fs::symlink_metadata(&final_dir).is_ok() {
        return Err(TemplateError::Exists(req.name.clone()));
    }
    fsutil::ensure_dir(req.locks_dir, 0o700).map_err(io_err(req.locks_dir))?;
    let _lock = crate::lock::try_lock(&req.locks_dir.join("templates.lock")).map_err(|e| match e {
        crate::lock::LockError::Held => TemplateError::Busy,
        crate::lock::LockError::Io { path, source } => TemplateError::Io { path: path.into(), source },
    })?;
    clear_leftovers(state_dir, req.umount)?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".template-{}-", req.name))
        .tempdir_in(state_dir)
        .map_err(io_err(state_dir))?;
    // From here an error drops `work`; a build killed outright leaves it
    // for the next build's clear_leftovers.
    let result = build_in(work.path(), req, builder);
    if result.is_err() && unmount_under(work.path(), req.umount).is_err() {
        // Never remove a tree that still has something mounted in it (a
        // killed mmdebstrap's /dev or /proc): leave it for the next build.
        let _ = work.keep();
        return result;
    }
    let manifest = result?;
    fsutil::ensure_dir(templates_dir, 0o700).map_err(io_err(templates_dir))?;
    let work = work.keep();
    if let Err(e) = nix::fcntl::renameat2(None, &work, None, &final_dir, nix::fcntl::RenameFlags::RENAME_NOREPLACE) {
        let _ = fsutil::remove_tree(&work);
        return Err(match e {
            nix::errno::Errno::EEXIST => TemplateError::Exists(req.name.clone()),
            e => TemplateError::Io { path: final_dir, source: e.into() },
        });
    }
    fsutil::sync_dir(templates_dir).map_err(io_err(templates_dir))?;
    Ok(manifest)
}

fn build_in(work: &Path, req: &BuildRequest, builder: &dyn Builder) -> Result<Manifest, TemplateError> {
    let tree = work.join("tree");
    builder.make_tree(work, &tree)?;
    // A builder may have mounted things in its tree (mmdebstrap unmounts
    // what it mounted); make sure before we touch the tree.
    unmount_under(work, req.umount)?;
    finish(work, &tree, req, builder.kind())
}

/// The step both builders share: seal the tree, copy out the kernel and
/// initrd, make the ext4 image from the tree, and write the manifest.
fn finish(work: &Path, tree: &Path, req: &BuildRequest, kind: BuilderKind) -> Result<Manifest, TemplateError> {
    let tree = tree.to_path_buf();
    seal(&tree)?;
    let packages = installed_packages(&tree)?;
    let (kernel_src, initrd_src, kernel_version) = find_kernel(&tree)?;
    boot::install(&tree, &kernel_version)?;
    let kernel = work.join("vmlinuz");
    let initrd = work.join("initrd.img");
    fs::copy(&kernel_src, &kernel).map_err(io_err(&kernel))?;
    fs::copy(&initrd_src, &initrd).map_err(io_err(&initrd))?;

    let root = work.join("root.img");
    let mk: Vec<std::ffi::OsString> = vec![
        "-q".into(),
        "-F".into(),
        "-t".into(),
        "ext4".into(),
        "-L".into(),
        ROOT_LABEL.into(),
        "-O".into(),
        "metadata_csum_seed".into(),
        "-d".into(),
        tree.clone().into_os_string(),
        root.clone().into_os_string(),
        ROOT_SIZE.into(),
    ];
    exec::run(req.mke2fs, &mk, req.timeout).map_err(TemplateError::Mkfs)?;
    fsutil::remove_tree(&tree).map_err(io_err(&tree))?;

    let digest = |p: &Path| -> Result<FileDigest, TemplateError> {
        let (sha256, bytes) = crate::image::sha256_file(p).map_err(io_err(p))?;
        Ok(FileDigest { file: p.file_name().unwrap_or_default().to_string_lossy().into_owned(), bytes, sha256 })
    };
    let manifest = Manifest {
        name: req.name.clone(),
        image: req.image.clone(),
        suite: req.suite.clone(),
        mirror: req.mirror.clone(),
        builder: kind.as_str().into(),
        built_at: crate::state::now(),
        build_key: build_key(),
        packages,
        root: digest(&root)?,
        kernel: digest(&kernel)?,
        initrd: digest(&initrd)?,
        kernel_version,
    };
    let mpath = work.join("manifest.json");
    fsutil::write_atomic(&mpath, &serde_json::to_vec_pretty(&manifest).expect("manifest serializes"), 0o444)
        .map_err(io_err(&mpath))?;
    for p in [&root, &kernel, &initrd] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o444)).map_err(io_err(p))?;
    }
    for p in [&root, &kernel, &initrd, &mpath] {
        fs::File::open(p).and_then(|f| f.sync_all()).map_err(io_err(p))?;
    }
    fs::set_permissions(work, fs::Permissions::from_mode(0o555)).map_err(io_err(work))?;
    Ok(manifest)
}

/// Refuses to go through a symlink inside the tree: `rel`'s directories
/// (and `rel` itself if `whole`) must not be symlinks. A tree read back
/// from a guest's disk is the guest's to shape, and an `etc` that points
/// at the host's /etc must not make a root process write there. Missing
/// components are fine (they are created as real directories).
fn inside(tree: &Path, rel: &str, whole: bool) -> Result<PathBuf, TemplateError> {
    let path = tree.join(rel);
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let upto = if whole { parts.len() } else { parts.len().saturating_sub(1) };
    let mut p = tree.to_path_buf();
    for c in &parts[..upto] {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(TemplateError::Layout(format!("/{rel} goes through a symlink (/{}); refusing to follow it", p.strip_prefix(tree).unwrap_or(&p).display())))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(path)
}

fn write(tree: &Path, rel: &str, text: &str, mode: u32) -> Result<(), TemplateError> {
    let p = inside(tree, rel, false)?;
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    // Replace, never write through, a symlink the packages left there.
    let _ = fs::remove_file(&p);
    fs::write(&p, text).map_err(io_err(&p))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err(&p))
}

fn link(tree: &Path, rel: &str, target: &str) -> Result<(), TemplateError> {
    let p = inside(tree, rel, false)?;
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let _ = fs::remove_file(&p);
    symlink(target, &p).map_err(io_err(&p))
}

fn remove_dir(tree: &Path, rel: &str) -> Result<(), TemplateError> {
    let p = inside(tree, rel, false)?;
    match fs::symlink_metadata(&p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => fsutil::remove_tree(&p).map_err(io_err(&p)),
    }
}

fn remove(tree: &Path, rel: &str) -> Result<(), TemplateError> {
    let p = inside(tree, rel, false)?;
    fsutil::remove_if_exists(&p).map(|_| ()).map_err(io_err(&p))
}

/// Seals the tree: nothing unique to one guest stays in it (SSH host keys,
/// machine id, random seed, logs, apt lists), root's password is locked,
/// and the first-boot identity unit is installed and enabled. It serves
/// both builders, so it also undoes what an install leaves of its build
/// machine: its hostname, hosts entry, static address and name servers,
/// its root password, the installer's logs and a DHCP lease.
pub fn seal(tree: &Path) -> Result<(), TemplateError> {
    write(tree, "etc/hostname", "localhost\n", 0o644)?;
    // d-i writes the build machine's static address here (ifupdown);
    // clones get theirs from the identity seed through systemd-networkd.
    if fs::symlink_metadata(tree.join("etc/network/interfaces")).is_ok() {
        write(tree, "etc/network/interfaces", LOOPBACK_ONLY, 0o644)?;
    }
    // The identity unit writes the clone's own.
    remove(tree, "etc/resolv.conf")?;
    remove_dir(tree, "var/log/installer")?;
    empty_files(&inside(tree, "var/lib/dhcp", true)?)?;
    write(tree, "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644)?;
    write(tree, "etc/fstab", &format!("LABEL={ROOT_LABEL}\t/\text4\tdefaults,errors=remount-ro\t0\t1\n"), 0o644)?;
    // An empty machine-id: systemd makes a fresh one at first boot.
    write(tree, "etc/machine-id", "", 0o444)?;
    remove(tree, "var/lib/dbus/machine-id")?;
    remove(tree, "var/lib/systemd/random-seed")?;
    let ssh = inside(tree, "etc/ssh", true)?;
    if let Ok(entries) = fs::read_dir(&ssh) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
            }
        }
    }
    write(tree, "etc/ssh/sshd_config.d/guest-installer.conf", "HostKey /etc/ssh/ssh_host_ed25519_key\n", 0o644)?;
    lock_root(tree)?;
    // Logs and caches.
    for dir in ["var/log", "var/cache/apt", "var/lib/apt/lists"] {
        empty_files(&inside(tree, dir, true)?)?;
    }
    write(tree, "etc/systemd/journald.conf.d/guest-installer.conf", "[Journal]\nStorage=volatile\n", 0o644)?;
    // systemd-networkd configures the static address the seed gives.
    link(tree, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service")?;
    link(tree, "etc/systemd/system/sockets.target.wants/systemd-networkd.socket", "/lib/systemd/system/systemd-networkd.socket")?;
    for unit in MASKED {
        link(tree, &format!("etc/systemd/system/{unit}"), "/dev/null")?;
    }
    remove(tree, "etc/systemd/system/getty.target.wants/getty@tty1.service")?;
    write(tree, "usr/local/sbin/gi-identity", IDENTITY_SCRIPT, 0o755)?;
    write(tree, "etc/systemd/system/gi-identity.service", IDENTITY_UNIT, 0o644)?;
    link(tree, "etc/systemd/system/sysinit.target.wants/gi-identity.service", "/etc/systemd/system/gi-identity.service")?;
    remove(tree, "var/lib/gi-identity/done")?;
    Ok(())
}

/// What is left of /etc/network/interfaces in a template.
const LOOPBACK_ONLY: &str = "# The loopback interface only: guest-installer's identity seed configures\n\
# the network with systemd-networkd (/etc/systemd/network/).\n\
source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n";

/// Root's password field becomes `!`: no login until the seed sets a hash.
fn lock_root(tree: &Path) -> Result<(), TemplateError> {
    let p = regular_file(tree, "etc/shadow")?;
    let text = fs::read_to_string(&p).map_err(io_err(&p))?;
    let mut out = String::with_capacity(text.len());
    let mut found = false;
    for line in text.lines() {
        let mut f: Vec<&str> = line.split(':').collect();
        if f.first() == Some(&"root") && f.len() > 2 {
            f[1] = "!";
            found = true;
        }
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    if !found {
        return Err(TemplateError::Layout("/etc/shadow has no root entry".into()));
    }
    // Written to a new file (never through whatever was there) that keeps
    // the old one's owner and group (shadow, for unix_chkpwd).
    let m = fs::symlink_metadata(&p).map_err(io_err(&p))?;
    fs::remove_file(&p).map_err(io_err(&p))?;
    fs::write(&p, out).map_err(io_err(&p))?;
    {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::lchown(&p, Some(m.uid()), Some(m.gid())).map_err(io_err(&p))?;
    }
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).map_err(io_err(&p))
}

/// A regular file of the tree (not a symlink, reached through no symlink).
fn regular_file(tree: &Path, rel: &str) -> Result<PathBuf, TemplateError> {
    let p = inside(tree, rel, true)?;
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_file() => Ok(p),
        Ok(_) => Err(TemplateError::Layout(format!("/{rel} is not a regular file"))),
        Err(source) => Err(TemplateError::Io { path: p, source }),
    }
}

/// Removes the regular files under `dir` (not following symlinks), keeping
/// directories so that packages find them.
fn empty_files(dir: &Path) -> Result<(), TemplateError> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if m.is_dir() {
            empty_files(&p)?;
        } else if m.is_file() {
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

/// `name version` of each installed package, from dpkg's status file.
fn installed_packages(tree: &Path) -> Result<Vec<String>, TemplateError> {
    let p = regular_file(tree, "var/lib/dpkg/status")?;
    let text = fs::read_to_string(&p).map_err(io_err(&p))?;
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let field = |k: &str| para.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        if let (Some(name), Some(ver), Some(status)) = (field("Package:"), field("Version:"), field("Status:")) {
            if status.ends_with(" installed") {
                out.push(format!("{name} {ver}"));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(TemplateError::Layout("no installed packages found".into()));
    }
    Ok(out)
}

/// The one kernel and its initrd in /boot.
fn find_kernel(tree: &Path) -> Result<(PathBuf, PathBuf, String), TemplateError> {
    let boot = inside(tree, "boot", true)?;
    let mut versions = Vec::new();
    for e in fs::read_dir(&boot).map_err(io_err(&boot))?.flatten() {
        if let Some(v) = e.file_name().to_str().and_then(|n| n.strip_prefix("vmlinuz-")) {
            versions.push(v.to_owned());
        }
    }
    let [v] = versions.as_slice() else {
        return Err(TemplateError::Layout(format!("expected one kernel in /boot, found {}", versions.len())));
    };
    let k = boot.join(format!("vmlinuz-{v}"));
    let i = boot.join(format!("initrd.img-{v}"));
    for p in [&k, &i] {
        if !fs::symlink_metadata(p).is_ok_and(|m| m.is_file()) {
            return Err(TemplateError::Layout(format!("{} is missing", p.display())));
        }
    }
    Ok((k, i, v.clone()))
}

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// Unmounts whatever a killed mmdebstrap left mounted in a build tree, so
/// that removing the tree can never reach the host's /dev or /proc.
fn unmount_under(dir: &Path, umount: &Path) -> Result<(), TemplateError> {
    for m in mounts_under(dir) {
        let _ = exec::run(umount, &["--lazy".as_ref(), m.as_os_str()], Duration::from_secs(30));
    }
    if let Some(m) = mounts_under(dir).first() {
        return Err(TemplateError::Io { path: m.clone(), source: io::Error::other("still mounted after umount") });
    }
    Ok(())
}

fn clear_leftovers(state_dir: &Path, umount: &Path) -> Result<(), TemplateError> {
    for e in fs::read_dir(state_dir).map_err(io_err(state_dir))?.flatten() {
        if e.file_name().to_string_lossy().starts_with(".template-") {
            let p = e.path();
            unmount_under(&p, umount)?;
            fsutil::remove_tree(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

/// The values a clone's identity is made of: the same typed values the
/// preseed gets.
pub struct Identity<'a> {
    pub hostname: &'a Hostname,
    pub domain: &'a DomainName,
    pub network: &'a Network,
    pub root_hash: &'a CryptHash,
    /// The clone's new filesystem UUID (lowercase, hyphenated).
    pub fs_uuid: &'a str,
}

/// The seed text the first-boot unit reads. Every value is a validated
/// type, so none can hold a newline or start another line.
pub fn render_seed(id: &Identity) -> String {
    render_seed_with_mac(id, None)
}

/// The seed, with the MAC of the NIC the address belongs to when the
/// host knows it (the guest then configures that NIC, whatever its name).
pub fn render_seed_with_mac(id: &Identity, mac: Option<crate::types::Mac>) -> String {
    let n = id.network;
    let mut s = format!(
        "{SEED_MAGIC}\nhostname={}\ndomain={}\naddress={}\nprefix={}\ngateway={}\n",
        id.hostname,
        id.domain,
        n.ip(),
        n.netmask().prefix_len(),
        n.gateway()
    );
    for ns in n.nameservers() {
        s.push_str(&format!("nameserver={ns}\n"));
    }
    if let Some(mac) = mac {
        s.push_str(&format!("mac={mac}\n"));
    }
    s.push_str(&format!("root_hash={}\nfs_uuid={}\nend\n", id.root_hash.expose(), id.fs_uuid));
    s
}

/// The seed disk's bytes: the text, zero-padded to a whole number of sectors.
pub fn seed_disk(text: &str) -> Option<Vec<u8>> {
    if text.len() >= SEED_BYTES {
        return None;
    }
    let mut b = text.as_bytes().to_vec();
    b.resize(SEED_BYTES, 0);
    Some(b)
}

/// A random version-4 UUID.
pub fn random_uuid() -> io::Result<String> {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut b))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_from_disk_info() {
        let s = Suite::from_disk_info("Debian GNU/Linux 12.0.0 \"Bookworm\" - Official amd64 NETINST with firmware 20230610-10:23");
        assert_eq!(s.unwrap().as_str(), "bookworm");
        assert_eq!(Suite::from_disk_info("Debian GNU/Linux 11.7.0 \"x\" - Official").unwrap().as_str(), "bullseye");
        assert!(Suite::from_disk_info("something else").is_none());
        assert!(Suite::parse("bookworm; rm").is_err());
    }

    /// A tree read back from a guest may hold symlinks that point out of
    /// it (absolute ones resolve on the host): sealing must never write,
    /// empty or read through them.
    #[test]
    fn seal_never_follows_symlinks_out_of_the_tree() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("precious");
        for link in ["etc", "var/log", "etc/ssh", "etc/shadow", "var/lib/dpkg/status"] {
            fs::write(&victim, "root:keep:me\n").unwrap();
            fs::write(outside.path().join("ssh_host_rsa_key"), "host key").unwrap();
            let t = tempfile::tempdir().unwrap();
            let tree = t.path();
            // An otherwise sealable tree, with `link` pointing outside.
            fs::create_dir_all(tree.join("etc")).unwrap();
            fs::write(tree.join("etc/shadow"), "root:$6$x:1::::::\n").unwrap();
            fs::create_dir_all(tree.join("var/lib/dpkg")).unwrap();
            fs::write(tree.join("var/lib/dpkg/status"), "Package: a\nVersion: 1\nStatus: install ok installed\n").unwrap();
            let l = tree.join(link);
            let _ = fs::remove_file(&l);
            let _ = fs::remove_dir_all(&l);
            fs::create_dir_all(l.parent().unwrap()).unwrap();
            let target = if link.ends_with("shadow") || link.ends_with("status") { victim.clone() } else { outside.path().to_path_buf() };
            symlink(&target, &l).unwrap();
            let r = seal(tree).and_then(|_| installed_packages(tree).map(|_| ()));
            assert!(matches!(r, Err(TemplateError::Layout(_))), "{link}: {r:?}");
            assert_eq!(fs::read_to_string(&victim).unwrap(), "root:keep:me\n", "{link}");
            assert!(outside.path().join("ssh_host_rsa_key").exists(), "{link}");
            assert!(!outside.path().join("hostname").exists(), "{link}");
        }
    }

    #[test]
    fn uuid_shape() {
        let u = random_uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_ne!(u, random_uuid().unwrap());
    }
}
