//! The tree extracted from an ISO is hostile input until checked: no
//! device files, FIFOs or sockets, no hard links, no symlink that leads
//! outside it (followed as the kernel would follow it, through every other
//! link on the way), and afterwards nothing writable and no special bit.

use super::ImageError;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use crate::fsutil::io_err;

/// As many links as the kernel follows in one lookup (MAXSYMLINKS).
const MAX_HOPS: usize = 40;

/// Walks the extracted tree: no device files, FIFOs or sockets; no
/// symlink that leads outside the tree; no hard links. Returns the number
/// of regular files and their bytes.
pub(super) fn sanitize(root: &Path) -> Result<(u64, u64), ImageError> {
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(io_err(&dir))?;
        for e in entries {
            let e = e.map_err(io_err(&dir))?;
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let m = fs::symlink_metadata(&p).map_err(io_err(&p))?;
            let ft = m.file_type();
            if ft.is_symlink() {
                if !resolves_inside(root, &p) {
                    return Err(ImageError::Unsafe(format!("symlink {rel} points outside the image (or loops)")));
                }
            } else if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                files += 1;
                bytes += m.len();
                if m.nlink() > 1 {
                    return Err(ImageError::Unsafe(format!("{rel} is a hard link")));
                }
            } else {
                return Err(ImageError::Unsafe(format!("{rel} is a device, FIFO or socket")));
            }
        }
    }
    Ok((files, bytes))
}

enum Step {
    Up,
    Name(OsString),
}

/// Follows the symlink `link` (inside `root`) the way the kernel would,
/// expanding every link met on the way, and says whether the walk stays
/// under `root`: `..` never climbs above it and an absolute target never
/// resolves (on the CD it would mean the CD's root, on our disk the
/// host's). A chain such as `a/b/x -> up/../..` with `a/b/up -> ../..`
/// looks inside when read as text but leaves the tree; this sees it. A
/// loop, or more than [`MAX_HOPS`] links, is refused too.
fn resolves_inside(root: &Path, link: &Path) -> bool {
    let Ok(rel) = link.strip_prefix(root) else { return false };
    let mut at: Vec<OsString> = match rel.parent() {
        Some(p) => p.iter().map(OsString::from).collect(),
        None => Vec::new(),
    };
    let Some(name) = rel.file_name() else { return false };
    let mut todo: VecDeque<Step> = VecDeque::from([Step::Name(name.into())]);
    let mut hops = 0;
    while let Some(step) = todo.pop_front() {
        match step {
            Step::Up => {
                if at.pop().is_none() {
                    return false;
                }
            }
            Step::Name(name) => {
                let here: PathBuf = root.iter().chain(at.iter().map(|s| s.as_os_str())).chain([name.as_os_str()]).collect();
                match fs::symlink_metadata(&here) {
                    Ok(m) if m.file_type().is_symlink() => {
                        hops += 1;
                        let Ok(target) = fs::read_link(&here) else { return false };
                        if hops > MAX_HOPS || target.is_absolute() {
                            return false;
                        }
                        for c in target.components().rev() {
                            match c {
                                Component::Normal(n) => todo.push_front(Step::Name(n.into())),
                                Component::ParentDir => todo.push_front(Step::Up),
                                Component::CurDir => {}
                                Component::RootDir | Component::Prefix(_) => return false,
                            }
                        }
                    }
                    _ => at.push(name),
                }
            }
        }
    }
    true
}

/// Files 0444 (0555 if executable), directories 0555, no special bits.
pub(super) fn make_read_only(root: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(root)?;
    if m.file_type().is_symlink() {
        return Ok(());
    }
    if m.is_dir() {
        for e in fs::read_dir(root)? {
            make_read_only(&e?.path())?;
        }
        fs::set_permissions(root, fs::Permissions::from_mode(0o555))
    } else {
        let mode = if m.mode() & 0o111 != 0 { 0o555 } else { 0o444 };
        fs::set_permissions(root, fs::Permissions::from_mode(mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_must_stay_inside_even_through_other_links() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("tree");
        fs::create_dir_all(root.join("a/b")).unwrap();
        let ok = |p: &str| resolves_inside(&root, &root.join(p));
        let link = |p: &str, t: &str| symlink(t, root.join(p)).unwrap();
        link("a/b/c", "c");
        link("a/b/x", "../../x");
        link("a/b/out", "../../../x");
        link("a/b/abs", "/etc/shadow");
        link("dot", ".");
        link("dotdot", "..");
        assert!(!ok("a/b/c"), "a link to itself loops");
        assert!(ok("a/b/x"));
        assert!(!ok("a/b/out"));
        assert!(!ok("a/b/abs"));
        assert!(ok("dot"));
        assert!(!ok("dotdot"));
        // Read as text, up/../.. is a/; followed, up is the root and
        // up/../.. is two levels above it.
        link("a/b/up", "../..");
        link("a/b/esc", "up/../..");
        assert!(ok("a/b/up"));
        assert!(!ok("a/b/esc"));
        // A link to a link that escapes, and a loop of two.
        link("a/via", "b/out");
        link("a/p", "q");
        link("a/q", "p");
        assert!(!ok("a/via"));
        assert!(!ok("a/p"));
        link("a/fine", "b/x/../a");
        assert!(ok("a/fine"));
    }
}
