//! Golden templates (the fast path): a sealed Debian system built once
//! per image, stored as a raw whole-disk image (partition table, ext4 root
//! partition, its own boot code: [`disk`]) beside the kernel and initrd
//! found inside it; and the per-VM identity seed that the template's
//! first-boot unit applies to a clone.
//!
//! Two builders make the root tree, behind one interface ([`Builder`]):
//! [`mmdebstrap`] from the configured mirror, and [`installer`], our own
//! preseeded install run in a registered machine and read back from its
//! disk. Both end in the same step (`finish`): seal the tree, find the
//! kernel and initrd, `mke2fs -d` into the disk's partition, the boot
//! code, digests, manifest.
//!
//! Layout: `STATE/templates/T/{manifest.json,disk.img,vmlinuz,initrd.img}`,
//! all read-only. A build happens in `STATE/templates/.template-T-*` and is
//! renamed into place only when complete, so a failed or killed build leaves no
//! template behind (its leftovers are cleared by the next build).
//!
//! A clone goes onto the machine's own volume ([`clone`]: a qcow2 overlay
//! of `disk.img` or a sparse copy) plus a small raw disk holding the
//! identity seed (`vms/VM/identity.img`); nothing is mounted.

pub mod boot;
mod build;
mod catalog;
pub mod clone;
pub mod disk;
mod identity;
pub mod installer;
pub mod mmdebstrap;
mod mounts;
pub mod partition;
pub mod readback;
mod seal;

pub use crate::types::TemplateName;
pub use build::{build, build_key, BuildRequest, Builder, BuilderKind, CLONE_ARGS, PACKAGES, ROOT_LABEL};
pub use catalog::{list, load, require_clonable, FileDigest, Manifest, Suite, Template, DEFAULT_SUITE};
pub use identity::{
    host_key_of, random_uuid, render_seed, render_seed_with_mac, seed_disk, Identity, APPLIED_LINE, IDENTITY_SCRIPT, IDENTITY_UNIT,
    IDENTITY_VERSION, REFUSED_LINE, SEED_BYTES, SEED_MAGIC, SEED_MAGIC_V1, SEED_MAGIC_V3, seed_version,
};
pub use disk::DiskLayout;
pub use seal::seal;
use seal::{link, write};

use crate::exec::ExecError;
use std::path::PathBuf;
use crate::fsutil::PathIo;

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
    #[error("the install into the build machine failed: {0}")]
    Install(String),
    #[error("cannot read the installed system from the build machine's disk {disk}: {message}")]
    Disk { disk: String, message: String },
    #[error("cannot copy the installed system out of its filesystem: {0}")]
    Extract(#[from] readback::ReadbackError),
    #[error("mke2fs failed: {0}")]
    Mkfs(ExecError),
    #[error("cannot write the template's boot code: {0}")]
    BootCode(String),
    #[error(
        "template {name} is a bare filesystem made by an older guest-installer, which no firmware boots; an admin must \
         build a new template (a whole disk): guest-installer template build {from} name=NEWNAME (keep {name} while \
         qcow2-overlay clones of it exist)"
    )]
    BareFilesystem { name: TemplateName, from: String },
    #[error("the built system is not usable: {0}")]
    Layout(String),
    #[error(
        "template {name} was built by an older guest-installer whose identity unit {lacks} (its clones would refuse \
         their seed and power off); an admin must build a new template: \
         guest-installer template build {from} name=NEWNAME (keep {name} while qcow2-overlay clones of it exist)"
    )]
    Outdated { name: TemplateName, from: String, lacks: &'static str },
    #[error("manifest {path} is corrupt ({message}); an admin must remove the template and build it again")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write the template under {0}")]
    Io(#[from] PathIo),
}

