//! Building a template: a builder makes the root tree, then one shared
//! step seals it, makes the ext4 image and publishes it with its manifest.

use super::identity::{IDENTITY_SCRIPT, IDENTITY_UNIT};
use super::mounts::{clear_leftovers, unmount_under};
use super::seal::{inside, regular_file, seal, MASKED, SEAL_VERSION};
use super::{boot, disk, FileDigest, Manifest, Suite, TemplateError, TemplateName};
use crate::config::Config;
use crate::fsutil;
use crate::steps::Steps;
use crate::types::{ImageName, KernelVersion, Rule};
use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use crate::fsutil::{io_err, PathIo};

/// The root filesystem's label (fstab and the kernel's root= use it).
pub const ROOT_LABEL: &str = "gi-root";
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
    // sfdisk: the first boot grows the root partition to the volume.
    "fdisk",
    // systemd-logind needs the bus; it turns the hypervisor's power
    // button (`stop`) into a clean shutdown.
    "dbus",
    // A DHCP clone's name servers come with its lease: networkd hands
    // them to resolved, whose stub /etc/resolv.conf points at.
    "systemd-resolved",
];

/// Changes whenever what a build produces changes (tests key their cache
/// on it).
pub fn build_key() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let grub = boot::grub_cfg();
    let layout = format!("{}:{}:{}", disk::DISK_BYTES, disk::PARTITION_START, disk::GRUB_MODULES.join(","));
    for part in [IDENTITY_SCRIPT, IDENTITY_UNIT, &PACKAGES.join(","), &MASKED.join(","), SEAL_VERSION, &grub, boot::REPORT_SCRIPT, boot::REPORT_UNIT, &boot::essential_hook(), &boot::INITRD_MODULES.join(","), &layout] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
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
    /// Fills `tree` (which does not exist yet, inside the hidden build
    /// directory) with a Debian root filesystem. Nothing needs to be sealed
    /// yet. Its steps go to `steps`.
    fn make_tree(&self, tree: &Path, steps: &Steps) -> Result<(), TemplateError>;
}

/// What to build, from what; the config gives the mirror, the programs,
/// the time limit and where the build lock lives.
pub struct BuildRequest<'a> {
    pub name: &'a TemplateName,
    pub image: Option<&'a ImageName>,
    pub suite: Suite,
    pub config: &'a Config,
}

/// Builds `templates_dir/NAME` with `builder`, reporting each step to `steps`.
pub fn build(templates_dir: &Path, req: &BuildRequest, builder: &dyn Builder, steps: &Steps) -> Result<Manifest, TemplateError> {
    let state_dir = templates_dir
        .parent()
        .ok_or_else(|| TemplateError::Io(PathIo::new(templates_dir, io::Error::other("no parent"))))?;
    let final_dir = templates_dir.join(req.name.as_str());
    if fs::symlink_metadata(&final_dir).is_ok() {
        return Err(TemplateError::Exists(req.name.clone()));
    }
    let locks_dir = req.config.locks_dir();
    fsutil::ensure_dir(&locks_dir, 0o700).map_err(io_err(&locks_dir))?;
    let _lock = crate::lock::try_lock(&locks_dir.join("templates.lock")).map_err(|e| match e {
        crate::lock::LockError::Held => TemplateError::Busy,
        crate::lock::LockError::Io(e) => TemplateError::Io(e),
    })?;
    // The build happens inside the templates directory, so that publishing
    // is a rename on one filesystem even when that directory is a mount
    // of storage the nodes of a cluster share. A failed first build takes
    // the directory away again: a refused request leaves nothing.
    let made_dir = fs::symlink_metadata(templates_dir).is_err();
    fsutil::ensure_dir(templates_dir, 0o700).map_err(io_err(templates_dir))?;
    let result = build_inside(templates_dir, state_dir, req, builder, steps);
    if result.is_err() && made_dir {
        let _ = fs::remove_dir(templates_dir);
    }
    result
}

fn build_inside(templates_dir: &Path, state_dir: &Path, req: &BuildRequest, builder: &dyn Builder, steps: &Steps) -> Result<Manifest, TemplateError> {
    let final_dir = templates_dir.join(req.name.as_str());
    // (Builds before templates could be shared left theirs in STATE.)
    clear_leftovers(state_dir)?;
    clear_leftovers(templates_dir)?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".template-{}-", req.name))
        .tempdir_in(templates_dir)
        .map_err(io_err(templates_dir))?;
    // From here an error drops `work`; a build killed outright leaves it
    // for the next build's clear_leftovers.
    let result = build_in(work.path(), req, builder, steps);
    if result.is_err() && unmount_under(work.path()).is_err() {
        // Never remove a tree that still has something mounted in it (a
        // killed mmdebstrap's /dev or /proc): leave it for the next build.
        let _ = work.keep();
        return result;
    }
    let manifest = result?;
    steps.step(&format!("publishing template {}", req.name));
    fsutil::publish_dir(work, &final_dir).map_err(|e| match e.source.kind() {
        io::ErrorKind::AlreadyExists => TemplateError::Exists(req.name.clone()),
        _ => TemplateError::Io(e),
    })?;
    Ok(manifest)
}

fn build_in(work: &Path, req: &BuildRequest, builder: &dyn Builder, steps: &Steps) -> Result<Manifest, TemplateError> {
    let tree = work.join("tree");
    builder.make_tree(&tree, steps)?;
    // A builder may have mounted things in its tree (mmdebstrap unmounts
    // what it mounted); make sure before we touch the tree.
    unmount_under(work)?;
    finish(work, &tree, req, builder.kind(), steps)
}

/// The step both builders share: seal the tree, copy out the kernel and
/// initrd, make the whole-disk image from the tree, and write the manifest.
fn finish(work: &Path, tree: &Path, req: &BuildRequest, kind: BuilderKind, steps: &Steps) -> Result<Manifest, TemplateError> {
    let tree = tree.to_path_buf();
    steps.step("sealing the tree and installing its boot menu");
    seal(&tree)?;
    let packages = installed_packages(&tree)?;
    let (kernel_src, initrd_src, kernel_version) = find_kernel(&tree)?;
    boot::install(&tree, kernel_version.as_str())?;
    let kernel = work.join("vmlinuz");
    let initrd = work.join("initrd.img");
    copy_boot_file(&kernel_src, &kernel)?;
    copy_boot_file(&initrd_src, &initrd)?;

    let root = work.join("disk.img");
    steps.step(&format!("making the {} GiB whole-disk image (mke2fs into its partition, GRUB boot code)", disk::DISK_BYTES >> 30));
    let grub = disk::Grub {
        mkimage: req.config.hypervisor.grub_mkimage.path(),
        modules: req.config.hypervisor.grub_pc.path(),
        timeout: req.config.timeouts.tool(),
    };
    let mkfs = ["-t", "ext4", "-L", ROOT_LABEL, "-O", "metadata_csum_seed"];
    disk::make(&root, disk::DISK_BYTES, &tree, req.config.mke2fs.path(), &mkfs, &grub, req.config.timeouts.template())?;
    fsutil::remove_tree(&tree).map_err(io_err(&tree))?;

    steps.step("computing the digests of the root image, kernel and initrd");
    let digest = |p: &Path| -> Result<FileDigest, TemplateError> {
        let (sha256, bytes) = crate::image::sha256_file(p).map_err(io_err(p))?;
        Ok(FileDigest { file: p.file_name().unwrap_or_default().to_string_lossy().into_owned(), bytes, sha256 })
    };
    let manifest = Manifest {
        name: req.name.clone(),
        image: req.image.cloned(),
        suite: req.suite.clone(),
        mirror: req.config.mirror.url(),
        builder: kind.as_str().into(),
        built_at: crate::state::now(),
        build_key: build_key(),
        packages,
        root: digest(&root)?,
        kernel: digest(&kernel)?,
        initrd: digest(&initrd)?,
        kernel_version,
        identity_version: super::identity::IDENTITY_VERSION,
        layout: disk::DiskLayout::WholeDisk,
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

/// `name version` of each installed package, from dpkg's status file.
pub(super) fn installed_packages(tree: &Path) -> Result<Vec<String>, TemplateError> {
    // Written by the guest (an installer build): bounded, like every read of it.
    let p = regular_file(tree, "var/lib/dpkg/status")?;
    let text = fsutil::read_text(&p, 64 << 20).map_err(io_err(&p))?;
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
/// The largest kernel or initrd a template may have: real ones are tens
/// of MiB, and the files come from a tree a guest may have written.
const MAX_BOOT_FILE: u64 = 256 << 20;

/// Copies a kernel or initrd out of the tree, sparsely (a sparse file the
/// guest made stays sparse on the host) and only up to [`MAX_BOOT_FILE`].
fn copy_boot_file(src: &Path, dst: &Path) -> Result<(), TemplateError> {
    let from = fsutil::open_nofollow(src).map_err(io_err(src))?;
    let len = from.metadata().map_err(io_err(src))?.len();
    if len > MAX_BOOT_FILE {
        return Err(TemplateError::Layout(format!(
            "/boot/{} is larger than {} MiB",
            src.file_name().unwrap_or_default().to_string_lossy(),
            MAX_BOOT_FILE >> 20
        )));
    }
    let to = fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(dst).map_err(io_err(dst))?;
    to.set_len(len).map_err(io_err(dst))?;
    crate::blocks::copy_sparse(&from, len, &to).map_err(io_err(dst))?;
    to.sync_all().map_err(io_err(dst))?;
    Ok(())
}

fn find_kernel(tree: &Path) -> Result<(PathBuf, PathBuf, KernelVersion), TemplateError> {
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
    // The name is the guest's choice: never shown unless it is a version.
    let version = KernelVersion::parse(v).map_err(|r| TemplateError::Layout(format!("the kernel's version in /boot/vmlinuz-VERSION {r}")))?;
    let k = boot.join(format!("vmlinuz-{v}"));
    let i = boot.join(format!("initrd.img-{v}"));
    for p in [&k, &i] {
        if !fs::symlink_metadata(p).is_ok_and(|m| m.is_file()) {
            return Err(TemplateError::Layout(format!("{} is missing", p.display())));
        }
    }
    Ok((k, i, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_with_kernel(version: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("boot")).unwrap();
        fs::write(t.path().join(format!("boot/vmlinuz-{version}")), b"k").unwrap();
        fs::write(t.path().join(format!("boot/initrd.img-{version}")), b"i").unwrap();
        t
    }

    #[test]
    fn boot_files_are_copied_sparsely_and_bounded() {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("vmlinuz-x"), t.path().join("copy"));
        let f = fs::File::create(&src).unwrap();
        f.set_len(200 << 20).unwrap();
        f.write_all_at(b"kernel", 100 << 20).unwrap();
        copy_boot_file(&src, &dst).unwrap();
        let m = fs::metadata(&dst).unwrap();
        assert_eq!(m.len(), 200 << 20);
        assert!(m.blocks() * 512 < 1 << 20, "the copy is not sparse: {} bytes allocated", m.blocks() * 512);
        assert_eq!(fs::read(&dst).unwrap()[(100 << 20)..(100 << 20) + 6], *b"kernel");
        f.set_len(MAX_BOOT_FILE + 1).unwrap();
        let e = copy_boot_file(&src, &t.path().join("copy2")).unwrap_err().to_string();
        assert!(e.contains("larger than 256 MiB"), "{e}");
        assert!(!t.path().join("copy2").exists());
    }

    #[test]
    fn the_guests_kernel_file_name_must_be_a_version() {
        let ok = tree_with_kernel("6.1.0-28-amd64");
        assert_eq!(find_kernel(ok.path()).unwrap().2.as_str(), "6.1.0-28-amd64");
        for hostile in ["6.1\x1b]0;owned\x07", "6.1\rfake", "6.1 x", "6.1\u{202e}"] {
            let t = tree_with_kernel(hostile);
            let e = find_kernel(t.path()).unwrap_err().to_string();
            assert!(e.contains("kernel's version") && !e.contains("owned") && !e.contains("fake"), "{hostile:?}: {e}");
        }
    }
}
