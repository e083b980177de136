//! The template catalog: the manifest each template is published with,
//! and reading one template or all of them back from disk.

use super::TemplateError;
use crate::fsutil;
use crate::types::{ImageName, Rule, TemplateName};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use crate::fsutil::PathIo;

/// Used when the image does not say which release it installs.
pub const DEFAULT_SUITE: &str = "bookworm";

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
    /// The installer image it was built from; None if from the mirror
    /// alone (`template build suite=S`).
    #[serde(default)]
    pub image: Option<ImageName>,
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
    pub kernel_version: crate::types::KernelVersion,
    /// The identity seed version the template's first-boot unit takes
    /// (`identity::IDENTITY_VERSION` when built; manifests from before
    /// the field have the version-1 unit).
    #[serde(default = "identity_version_1")]
    pub identity_version: u32,
    /// A whole disk, or (manifests from before the field) a bare filesystem.
    #[serde(default)]
    pub layout: super::DiskLayout,
}

impl Manifest {
    /// What `template build` was given: the image's name, or `suite=S`.
    pub fn built_from(&self) -> String {
        match &self.image {
            Some(i) => i.as_str().to_owned(),
            None => format!("suite={}", self.suite.as_str()),
        }
    }
}

fn identity_version_1() -> u32 {
    1
}

/// Refuses, with how to build a new one, a template a new clone of a
/// machine with `network` cannot be made from: a bare filesystem (made
/// before templates were whole disks: no firmware boots it; only machines
/// already cloned from one get a loader from the host), or one whose
/// first-boot unit would refuse the seed we write for `network` (it would
/// power the clone off). A template whose unit takes version 2 still
/// clones machines with a static IPv4 network (their seed is version 2).
pub fn require_clonable(t: &Template, network: &crate::types::Network) -> Result<(), TemplateError> {
    if t.manifest.layout == super::DiskLayout::BareFilesystem {
        return Err(TemplateError::BareFilesystem { name: t.manifest.name.clone(), from: t.manifest.built_from() });
    }
    let needed = super::identity::seed_version(network);
    if t.manifest.identity_version >= needed {
        return Ok(());
    }
    let lacks = if t.manifest.identity_version < 2 {
        "cannot install SSH keys or say how root logs in"
    } else {
        "cannot configure IPv6 or DHCP, which this machine's network needs"
    };
    Err(TemplateError::Outdated { name: t.manifest.name.clone(), from: t.manifest.built_from(), lacks })
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

const MAX_MANIFEST_BYTES: u64 = 1 << 20;

pub fn load(templates_dir: &Path, name: &TemplateName) -> Result<Template, TemplateError> {
    let dir = templates_dir.join(name.as_str());
    let path = dir.join("manifest.json");
    let bytes = match fsutil::read_limited(&path, MAX_MANIFEST_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(TemplateError::NotFound(name.clone())),
        Err(source) => return Err(TemplateError::Io(PathIo::new(path, source))),
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
        Err(source) => return Err(TemplateError::Io(PathIo::new(templates_dir, source))),
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
}
