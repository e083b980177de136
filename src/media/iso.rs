//! Per-VM install ISO: the pristine image tree with the per-VM files
//! grafted over it by xorriso, which reads the tree in place (no copy) and,
//! unlike genisoimage, never writes into its sources (`-boot-info-table`
//! patches the copy of isolinux.bin in the output, not the pristine one).

use crate::exec::{self, ExecError};
use crate::image::Image;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Writes `out`, which must not exist yet; the caller renames it into place.
pub fn build(
    xorriso: &Path,
    image: &Image,
    per_vm: &[(&str, &Path)],
    out: &Path,
    timeout: Duration,
) -> Result<(), ExecError> {
    let l = &image.manifest.layout;
    let boot_cat = Path::new(l.isolinux_bin.relative()).with_file_name("boot.cat");
    let mut args: Vec<OsString> = [
        "-no_rc", "-as", "mkisofs", "-quiet", "-r", "-J", "-l", "-V", "guest-installer",
        "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("-b".into());
    args.push(l.isolinux_bin.relative().into());
    args.push("-c".into());
    args.push(boot_cat.into_os_string());
    args.push("-o".into());
    args.push(out.into());
    args.push("-graft-points".into());
    let mut root = OsString::from("/=");
    root.push(image.tree());
    args.push(root);
    // Later graft points win over the tree's files of the same name.
    for (iso_path, file) in per_vm {
        let mut g = OsString::from(*iso_path);
        g.push("=");
        g.push(file);
        args.push(g);
    }
    exec::run(xorriso, &args, timeout).map(|_| ())
}
