//! Importing an installer ISO: copy and check it, extract and sanitise its
//! tree, patch its boot menu, master the base ISO, publish the image.

use super::{tree, BaseIso, ImageError, Layout, Manifest, BASE_ISO, RESERVED};
use crate::exec;
use crate::fsutil;
use crate::iso9660::{self, IsoError};
use crate::isolinux;
use crate::steps::{part, size, Meter, Steps};
use crate::types::{CdPath, ImageName, Sha256Hex};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};
use crate::fsutil::{io_err, PathIo};

const ISOLINUX_CFG: &str = "/isolinux/isolinux.cfg";
const MAX_ISOLINUX_CFG: u64 = 1 << 20;
const ISOLINUX_BIN: &str = "/isolinux/isolinux.bin";
const KERNEL: &str = "/install.amd/vmlinuz";
const INITRD: &str = "/install.amd/initrd.gz";
const XEN_KERNEL: &str = "/install.amd/xen/vmlinuz";
const XEN_INITRD: &str = "/install.amd/xen/initrd.gz";

fn cd(p: &'static str) -> CdPath {
    CdPath::parse(p).expect("constant path is valid")
}

/// Copies the ISO the admin named into `copy` (a new file of ours),
/// hashing the bytes as they are copied: what is checked and extracted
/// afterwards is exactly what was hashed, whatever happens to the named
/// file meanwhile (replaced, or rewritten in place by its owner).
fn copy_hashing(iso: &Path, copy: &Path, steps: &Steps) -> Result<(String, u64), ImageError> {
    let unreadable = |source| ImageError::IsoUnreadable { path: iso.into(), source };
    let mut src = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(iso)
        .map_err(unreadable)?;
    let meta = src.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(unreadable(io::Error::other("not a regular file")));
    }
    steps.step(&format!("copying and hashing the ISO ({})", size(meta.len())));
    let mut meter = Meter::new(meta.len(), Instant::now());
    let mut dst = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(copy).map_err(io_err(copy))?;
    super::sha256_stream(&mut src, unreadable, |total, chunk| {
        dst.write_all(chunk).map_err(io_err(copy))?;
        if meter.due(total, Instant::now()) {
            steps.step(&format!("copying and hashing the ISO: {}", part(total, meta.len())));
        }
        Ok(())
    })
}

/// Checks the ISO 9660 primary volume descriptor of our copy of the ISO
/// (named `shown` in messages): the signature, and a declared volume size
/// that fits in the file (a truncated download is the caller's problem to
/// fix, told as such, before xorriso sees it).
fn check_iso(copy: &Path, shown: &Path) -> Result<(), ImageError> {
    let io_err = |source| ImageError::Io(PathIo::new(copy, source));
    let f = fs::File::open(copy).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    let mut pvd = [0u8; 2048];
    match f.read_exact_at(&mut pvd, 16 * 2048) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ImageError::NotIso(shown.into())),
        Err(e) => return Err(io_err(e)),
    }
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return Err(ImageError::NotIso(shown.into()));
    }
    let blocks = u64::from(u32::from_le_bytes([pvd[80], pvd[81], pvd[82], pvd[83]]));
    let block_size = u64::from(u16::from_le_bytes([pvd[128], pvd[129]]));
    if blocks * block_size > len {
        return Err(ImageError::Truncated { declared: blocks * block_size, actual: len });
    }
    Ok(())
}

pub struct ImportRequest<'a> {
    pub name: &'a ImageName,
    pub iso: &'a Path,
    pub sha256: &'a Sha256Hex,
    pub xorriso: &'a Path,
    pub timeout: Duration,
}

/// Imports an ISO as `images_dir/NAME`. Everything happens in a hidden
/// directory that is renamed into place only when complete, so a failed
/// or killed import leaves no image behind. Each step is reported to `steps`.
pub fn import(images_dir: &Path, req: &ImportRequest, steps: &Steps) -> Result<Manifest, ImageError> {
    // The work happens beside images/ (same filesystem, so the final rename
    // is atomic), and images/ itself is only created for a good image: a
    // refused ISO leaves the state dir exactly as it was.
    let state_dir = images_dir.parent().ok_or_else(|| ImageError::Io(PathIo::new(images_dir, io::Error::other("images directory has no parent"))))?;
    let final_dir = images_dir.join(req.name.as_str());
    if fs::symlink_metadata(&final_dir).is_ok() {
        return Err(ImageError::Exists(req.name.clone()));
    }
    // One import at a time: then what a killed import left behind can be
    // cleared safely. The lock is on the directory itself (no lock file to
    // leave behind when the ISO is refused).
    let _lock = crate::lock::try_lock_dir(state_dir).map_err(|e| match e {
        crate::lock::LockError::Held => ImageError::Busy,
        crate::lock::LockError::Io(e) => ImageError::Io(e),
    })?;
    crate::lock::remove_temporaries(state_dir, &[".import-"]).map_err(io_err(state_dir))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".import-{}-", req.name))
        .tempdir_in(state_dir)
        .map_err(io_err(state_dir))?;
    // Our copy, then the tree, each take about what the ISO holds: say so
    // before copying anything rather than fill the state dir first, or let
    // xorriso fail half-way with a message that does not.
    let named = fs::symlink_metadata(req.iso).map(|m| m.len()).unwrap_or(0);
    steps.step(&format!("checking the room in the state directory (the image needs about {})", size(named.saturating_mul(2))));
    let free = nix::sys::statvfs::statvfs(work.path())
        .map(|v| v.blocks_available() * v.fragment_size())
        .map_err(|e| ImageError::Io(PathIo::new(work.path(), e.into())))?;
    if free < named.saturating_mul(2) {
        return Err(ImageError::NoSpace { need: named.saturating_mul(2), free });
    }
    let copy = work.path().join("source.iso");
    let (actual, source_bytes) = copy_hashing(req.iso, &copy, steps)?;
    steps.step("checking the ISO's SHA-256 and volume descriptor");
    if actual != req.sha256.as_str() {
        return Err(ImageError::DigestMismatch { actual });
    }
    check_iso(&copy, req.iso)?;
    let tree = work.path().join("tree");
    let mut indev = std::ffi::OsString::from("stdio:");
    indev.push(&copy);
    let args: Vec<&std::ffi::OsStr> = vec![
        "-no_rc".as_ref(),
        "-osirrox".as_ref(),
        "on".as_ref(),
        "-indev".as_ref(),
        indev.as_ref(),
        "-extract".as_ref(),
        "/".as_ref(),
        tree.as_os_str(),
    ];
    steps.step("extracting the ISO's files (xorriso)");
    exec::run(req.xorriso, &args, req.timeout).map_err(ImageError::Extract)?;
    fs::remove_file(&copy).map_err(io_err(&copy))?;

    steps.step("checking the files and patching the boot menu");
    let (files, bytes) = tree::sanitize(&tree)?;
    let layout = find_layout(&tree)?;
    let cfg_path = tree.join(layout.isolinux_cfg.relative());
    // The ISO's boot menu is read whole: bounded like every other read of
    // what an image holds (a real one is a few hundred bytes).
    if fs::symlink_metadata(&cfg_path).map_err(io_err(&cfg_path))?.len() > MAX_ISOLINUX_CFG {
        return Err(ImageError::Unsafe(format!("{ISOLINUX_CFG} is larger than {MAX_ISOLINUX_CFG} bytes")));
    }
    let original = fsutil::read_limited(&cfg_path, MAX_ISOLINUX_CFG).map_err(io_err(&cfg_path))?;
    let patched = isolinux::patch(&String::from_utf8_lossy(&original), layout.kernel.as_str(), layout.initrd.as_str());
    fsutil::write_atomic(&cfg_path, patched.as_bytes(), 0o444).map_err(io_err(&cfg_path))?;

    steps.step("mastering the base ISO (xorriso)");
    let base_iso = master_base_iso(work.path(), &tree, &layout, req)?;
    let manifest = Manifest {
        name: req.name.clone(),
        source_sha256: req.sha256.clone(),
        source_bytes,
        imported_at: crate::state::now(),
        layout,
        base_iso,
        files,
        bytes,
    };
    let mpath = work.path().join("manifest.json");
    fsutil::write_atomic(&mpath, &serde_json::to_vec_pretty(&manifest).expect("manifest serializes"), 0o444)
        .map_err(io_err(&mpath))?;
    steps.step(&format!("publishing image {}", req.name));
    tree::make_read_only(work.path()).map_err(io_err(work.path()))?;

    fsutil::publish_dir(work, &final_dir).map_err(|e| match e.source.kind() {
        io::ErrorKind::AlreadyExists => ImageError::Exists(req.name.clone()),
        _ => ImageError::Io(e),
    })?;
    Ok(manifest)
}

/// Masters the base ISO once: the patched tree plus the reserved per-VM
/// files, then finds where the reserved files' bytes are.
fn master_base_iso(work: &Path, tree: &Path, layout: &Layout, req: &ImportRequest) -> Result<BaseIso, ImageError> {
    let cfg = work.join("reserved-preseed.cfg");
    let img = work.join("reserved-preseed.img");
    fs::write(&cfg, vec![b'\n'; RESERVED as usize]).map_err(io_err(&cfg))?;
    fs::write(&img, vec![0u8; RESERVED as usize]).map_err(io_err(&img))?;
    let out = work.join(BASE_ISO);
    let boot_cat = Path::new(layout.isolinux_bin.relative()).with_file_name("boot.cat");
    let mut args: Vec<std::ffi::OsString> = [
        "-no_rc", "-as", "mkisofs", "-quiet", "-r", "-J", "-l", "-V", "guest-installer", "-no-emul-boot",
        "-boot-load-size", "4", "-boot-info-table",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.extend(["-b".into(), layout.isolinux_bin.relative().into(), "-c".into(), boot_cat.into_os_string()]);
    args.extend(["-o".into(), out.clone().into_os_string(), "-graft-points".into()]);
    let graft = |dest: &str, src: &Path| {
        let mut g = std::ffi::OsString::from(dest);
        g.push("=");
        g.push(src);
        g
    };
    // Later graft points win over the tree's files of the same name.
    args.push(graft("/", tree));
    args.push(graft("/preseed.cfg", &cfg));
    args.push(graft(isolinux::PRESEED_INITRD, &img));
    exec::run(req.xorriso, &args, req.timeout).map_err(ImageError::Master)?;
    fs::remove_file(&cfg).map_err(io_err(&cfg))?;
    fs::remove_file(&img).map_err(io_err(&img))?;

    let mut f = fs::File::open(&out).map_err(io_err(&out))?;
    let bytes = f.metadata().map_err(io_err(&out))?.len();
    let preseed_cfg = iso9660::find(&mut f, "/preseed.cfg").map_err(ImageError::BaseIso)?;
    let preseed_img = iso9660::find(&mut f, isolinux::PRESEED_INITRD).map_err(ImageError::BaseIso)?;
    if preseed_cfg.len != RESERVED || preseed_img.len != RESERVED {
        return Err(ImageError::BaseIso(IsoError::Malformed("reserved files have the wrong size")));
    }
    Ok(BaseIso { bytes, preseed_cfg, preseed_img })
}

fn is_regular(tree: &Path, p: &CdPath) -> bool {
    fs::symlink_metadata(tree.join(p.relative())).is_ok_and(|m| m.is_file())
}

fn find_layout(tree: &Path) -> Result<Layout, ImageError> {
    for required in [ISOLINUX_CFG, ISOLINUX_BIN, KERNEL, INITRD] {
        if !is_regular(tree, &cd(required)) {
            return Err(ImageError::Layout(required));
        }
    }
    let xen = is_regular(tree, &cd(XEN_KERNEL)) && is_regular(tree, &cd(XEN_INITRD));
    Ok(Layout {
        isolinux_cfg: cd(ISOLINUX_CFG),
        isolinux_bin: cd(ISOLINUX_BIN),
        kernel: cd(KERNEL),
        initrd: cd(INITRD),
        xen_kernel: xen.then(|| cd(XEN_KERNEL)),
        xen_initrd: xen.then(|| cd(XEN_INITRD)),
    })
}
