//! Everything the unprivileged qemu reads or writes, opened by us as root
//! and handed over as descriptors at the slots its command line names.
//! Nothing of ours changes owner or mode for it: the VM's volume, media
//! and seed stay root's, mode 0600, in root's directories.

use super::supervisor::{FD_BACKING, FD_DISK, FD_DISK_BACKING, FD_DISK_RO, FD_INITRD, FD_KERNEL, FD_MEDIA};
use crate::hypervisor::Domain;
use crate::media::{qcow2, Media};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How qemu gets a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
    /// Read by name (`-kernel`, `-initrd` take no descriptor): an
    /// in-memory copy that anyone may open through /proc/self/fd.
    Copy,
}

/// A descriptor number qemu is given, the file behind it, and how it is opened.
pub type Slot = (RawFd, PathBuf, Access);

/// The files, their slots and how each is handed over. `grub` is the GRUB
/// image guests booting their own kernel start from; `templates` is where
/// the only files a volume may be backed by live.
pub fn plan(d: &Domain, grub: &Path, templates: &Path) -> io::Result<Vec<Slot>> {
    let disk = PathBuf::from(d.disk.to_string());
    let mut v = vec![(FD_DISK, disk.clone(), Access::ReadWrite), (FD_DISK_RO, disk, Access::ReadOnly)];
    if let Some(b) = disk_backing(d, templates)? {
        v.push((FD_DISK_BACKING, b, Access::ReadOnly));
    }
    match d.media {
        Media::Clone { seed, .. } => v.push((FD_MEDIA, seed.clone(), Access::ReadOnly)),
        Media::Loader => v.push((FD_KERNEL, grub.to_owned(), Access::Copy)),
        Media::Disk { .. } => {}
        Media::Cdrom(iso) => {
            v.push((FD_MEDIA, iso.clone(), Access::ReadOnly));
            let backing = qcow2::backing(iso)?
                .ok_or_else(|| io::Error::other(format!("{} names no backing file", iso.display())))?;
            v.push((FD_BACKING, backing, Access::ReadOnly));
        }
        Media::Kernel { kernel, initrd } => {
            v.push((FD_KERNEL, kernel.clone(), Access::Copy));
            v.push((FD_INITRD, initrd.clone(), Access::Copy));
        }
    }
    Ok(v)
}

/// Opens what `plan` lists.
pub fn open(plan: &[Slot]) -> Result<Vec<(RawFd, OwnedFd)>, (PathBuf, io::Error)> {
    plan.iter()
        .map(|(slot, path, how)| {
            let fd = match how {
                Access::ReadWrite => open_file(path, true),
                Access::ReadOnly => open_file(path, false),
                Access::Copy => memfd_copy(path),
            };
            fd.map(|f| (*slot, f)).map_err(|e| (path.clone(), e))
        })
        .collect()
}

fn open_file(path: &Path, write: bool) -> io::Result<OwnedFd> {
    // A volume may be a block device (no O_NOFOLLOW: /dev/vg/lv is a link).
    let f = OpenOptions::new().read(true).write(write).custom_flags(libc::O_CLOEXEC).open(path)?;
    Ok(f.into())
}

/// The seals a handed-over copy carries: nobody, not even a process that
/// reaches it through /proc, can change it, and no seal can be undone.
pub const SEALS: libc::c_int = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;

fn memfd_copy(path: &Path) -> io::Result<OwnedFd> {
    let mut src = crate::fsutil::open_nofollow(path)?;
    // SAFETY: a constant C string; the result is a new descriptor we own.
    let fd = unsafe { libc::memfd_create(c"gi-boot-file".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, ours.
    let mut copy = unsafe { File::from_raw_fd(fd) };
    io::copy(&mut src, &mut copy)?;
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(copy.into())
}

/// A qcow2 volume's backing file, if it has one: a raw template image
/// (`templates/NAME/FILE`, a regular file reached without a symlink or
/// `..`), as our clones have. The header is the guest's to write (qemu
/// holds the volume read-write), so the name in it is hostile: root opens
/// it for qemu only if it is one of those. qemu would otherwise probe a
/// backing file of another format, or follow its own backing file by name.
fn disk_backing(d: &Domain, templates: &Path) -> io::Result<Option<PathBuf>> {
    if d.disk.format() != crate::types::DiskFormat::Qcow2 {
        return Ok(None);
    }
    template_backing(Path::new(d.disk.as_str()), templates)
}

fn template_backing(path: &Path, templates: &Path) -> io::Result<Option<PathBuf>> {
    let Some(b) = qcow2::backing(path)? else { return Ok(None) };
    let refuse = |why: &str| io::Error::other(format!("{} names the backing file {}, which {why}", path.display(), b.display()));
    if qcow2::backing_format(path)?.as_deref() != Some("raw") {
        return Err(refuse("is not recorded as raw: the qemu driver takes raw backing files only"));
    }
    let in_templates = b.parent().and_then(Path::parent) == Some(templates);
    let plain = std::fs::canonicalize(&b).is_ok_and(|c| c == b) && std::fs::symlink_metadata(&b).is_ok_and(|m| m.is_file());
    if !in_templates || !plain {
        return Err(refuse("is not a template's image"));
    }
    Ok(Some(b))
}

/// Reads a whole small file for tests.
#[cfg(test)]
fn read_fd(fd: OwnedFd) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    // From the start, as qemu's own open of /proc/self/fd/N reads it.
    let mut f = File::from(fd);
    f.rewind().unwrap();
    f.read_to_end(&mut v).unwrap();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_files_are_copied_and_overlays_name_their_backing() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("vmlinuz");
        std::fs::write(&k, b"kernel bytes").unwrap();
        let fds = open(&[(FD_KERNEL, k.clone(), Access::Copy)]).unwrap();
        // A copy: later changes to the file do not reach it.
        std::fs::write(&k, b"changed").unwrap();
        let (_, fd) = fds.into_iter().next().unwrap();
        assert_eq!(read_fd(fd), b"kernel bytes");

        let base = d.path().join("base.iso");
        std::fs::write(&base, vec![0u8; 1 << 16]).unwrap();
        let missing = open(&[(FD_MEDIA, d.path().join("nope"), Access::ReadOnly)]).unwrap_err();
        assert_eq!(missing.0, d.path().join("nope"));
    }

    #[test]
    fn a_volume_is_backed_only_by_a_template_image() {
        let d = tempfile::tempdir().unwrap();
        let templates = d.path().join("templates");
        std::fs::create_dir_all(templates.join("t1")).unwrap();
        let root = templates.join("t1/root.img");
        let outside = d.path().join("shadow");
        for f in [&root, &outside] {
            std::fs::write(f, vec![0u8; 1 << 16]).unwrap();
        }
        let over = |name: &str, backing: &Path| {
            let p = d.path().join(name);
            let out = File::create(&p).unwrap();
            qcow2::write_overlay(&out, &mut File::open(&root).unwrap(), 1 << 16, backing, &[]).unwrap();
            p
        };
        assert_eq!(template_backing(&over("good.qcow2", &root), &templates).unwrap(), Some(root.clone()));
        // What a guest could write into its own volume's header.
        for bad in [outside.clone(), templates.join("t1/../../shadow"), templates.join("root.img")] {
            let e = template_backing(&over("bad.qcow2", &bad), &templates).unwrap_err();
            assert!(e.to_string().contains("is not a template's image"), "{}: {e}", bad.display());
        }
        std::os::unix::fs::symlink(&outside, templates.join("t1/link.img")).unwrap();
        assert!(template_backing(&over("link.qcow2", &templates.join("t1/link.img")), &templates).is_err());
    }
}
