//! Absolute paths: a VM's volume and a file inside an installer image,
//! with one rule for safe path components; and how a volume's bytes are
//! laid out, which its path decides.

use super::Rule;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

fn is_safe_abs_path(s: &str) -> bool {
    s.len() <= 255
        && s.len() > 1
        && s.starts_with('/')
        && s[1..].split('/').all(|c| {
            !c.is_empty() && c != "." && c != ".." && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        })
}

string_type!(
    /// An absolute, canonical path to a VM's volume: no `.` or `..`
    /// components, no empty components, a conservative character set.
    DiskPath,
    |s| {
        if is_safe_abs_path(s) {
            Ok(())
        } else {
            Err(Rule("must be an absolute path without '.', '..' or '//', of letters, digits, '.', '_', '+', '-' and '/'"))
        }
    }
);

string_type!(
    /// A file's path inside an installer image, as the boot loader sees it
    /// (`/install.amd/vmlinuz`).
    CdPath,
    |s| {
        if is_safe_abs_path(s) {
            Ok(())
        } else {
            Err(Rule("must be an absolute path inside the image without '.' or '..'"))
        }
    }
);

impl CdPath {
    /// The same path relative to the image's root, for joining to a tree.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }
}

/// How a volume's bytes are laid out (also a file pool's `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

impl DiskFormat {
    /// The ending of a volume file's name, which [`DiskPath::format`]
    /// reads back.
    pub fn file_extension(self) -> &'static str {
        match self {
            DiskFormat::Raw => "img",
            DiskFormat::Qcow2 => "qcow2",
        }
    }

    /// The name qemu and xl use.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

impl DiskPath {
    /// A file named `*.qcow2` is a qcow2 image; every other volume (a
    /// block device, a raw file) is raw.
    pub fn format(&self) -> DiskFormat {
        if self.0.ends_with(".qcow2") {
            DiskFormat::Qcow2
        } else {
            DiskFormat::Raw
        }
    }

    /// True if this path lies under `root` (itself a canonical DiskPath).
    pub fn is_under(&self, root: &DiskPath) -> bool {
        self.0
            .strip_prefix(root.as_str())
            .is_some_and(|rest| rest.starts_with('/') || root.as_str() == "/")
    }
}
