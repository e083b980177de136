//! `/etc/guest-installer/config.toml` (or `$GUEST_INSTALLER_CONFIG`).
//! Only whoever starts the program chooses the config: no argument can.
//!
//! This module holds the top-level schema and the path type every section
//! uses; each TOML section, and loading, lives in its own file.

use crate::types::{DiskPath, DomainName, Principal};
use serde::Deserialize;
use std::path::{Path, PathBuf};

macro_rules! checked_string {
    ($(#[$m:meta])* $name:ident, $check:expr, $rule:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);
        impl $name {
            pub fn parse(s: &str) -> Result<Self, Rule> {
                let check: fn(&str) -> bool = $check;
                if check(s) { Ok($name(s.to_owned())) } else { Err(Rule($rule)) }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

mod audit;
mod console;
mod hypervisor;
mod load;
mod mirror;
mod timeouts;
#[cfg(test)]
mod tests;

pub use audit::{Audit, DEFAULT_SYSLOG_SOCKET};
pub use console::{Console, SocketPath, DEFAULT_ACCOUNT, DEFAULT_SOCKET, MAX_SOCKET_PATH};
pub use hypervisor::{Bridge, ConsoleLogMax, Driver, Hypervisor, QemuNet, QemuUids, UserName, DEFAULT_QEMU_UID_BASE};
pub use load::{ConfigError, DEFAULT_PATH, ENV_VAR};
pub use mirror::{Mirror, MirrorDir, MirrorHost};
pub use timeouts::Timeouts;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub state_dir: AbsPath,
    pub preseed_template: AbsPath,
    #[serde(default)]
    pub admins: Vec<Principal>,
    pub domain: DomainName,
    /// If not empty, a volume root imports with `disk=` must lie under one
    /// of these (compared as given, before symlinks are resolved).
    #[serde(default)]
    pub disk_roots: Vec<DiskPath>,
    #[serde(default = "default_xorriso")]
    pub xorriso: AbsPath,
    /// Programs the template builder runs.
    #[serde(default = "default_mmdebstrap")]
    pub mmdebstrap: AbsPath,
    #[serde(default = "default_mke2fs")]
    pub mke2fs: AbsPath,
    /// Writes a Ganeti clone's identity into its freshly made filesystem
    /// (`ganeti create`, `rename`): only into files we name.
    #[serde(default = "default_debugfs")]
    pub debugfs: AbsPath,
    pub mirror: Mirror,
    pub hypervisor: Hypervisor,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub audit: Audit,
    /// The console door (`ssh guest@HOST console VM`).
    #[serde(default)]
    pub console: Console,
    /// Where `machine add VM size=...` creates volumes; none: only root's
    /// `disk=` imports.
    #[serde(default)]
    pub volumes: Option<crate::volume::pool::PoolConfig>,
    /// Cluster mode: machines are instances of this Ganeti cluster.
    #[serde(default)]
    pub cluster: Option<crate::ganeti::cluster::ClusterConfig>,
}

fn default_xorriso() -> AbsPath {
    AbsPath("/usr/bin/xorriso".into())
}
fn default_mmdebstrap() -> AbsPath {
    AbsPath("/usr/bin/mmdebstrap".into())
}
fn default_mke2fs() -> AbsPath {
    AbsPath("/usr/sbin/mke2fs".into())
}
fn default_debugfs() -> AbsPath {
    AbsPath("/usr/sbin/debugfs".into())
}

/// An absolute path without `..`, from the config (admin-chosen, but it
/// still ends up in argv and domain configs, so it may not hold quotes or
/// control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsPath(PathBuf);

impl AbsPath {
    /// A default from our own code.
    pub(crate) fn from_static(s: &'static str) -> Self {
        AbsPath(PathBuf::from(s))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.starts_with('/')
            && !s.split('/').any(|c| c == "..")
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b));
        if ok {
            Ok(AbsPath(PathBuf::from(s)))
        } else {
            Err(serde::de::Error::custom(format!(
                "path {s:?} must be absolute, without '..', of letters, digits, '/', '.', '_', '+' and '-'"
            )))
        }
    }
}

impl Config {
    pub fn is_admin(&self, p: &Principal) -> bool {
        self.admins.contains(p)
    }

    pub fn images_dir(&self) -> PathBuf {
        self.state_dir.path().join("images")
    }
    pub fn machines_dir(&self) -> PathBuf {
        self.state_dir.path().join("machines")
    }
    pub fn vms_dir(&self) -> PathBuf {
        self.state_dir.path().join("vms")
    }
    pub fn templates_dir(&self) -> PathBuf {
        self.state_dir.path().join("templates")
    }
    pub fn locks_dir(&self) -> PathBuf {
        self.state_dir.path().join("locks")
    }
    /// The lock that serialises requests for one machine.
    pub fn vm_lock(&self, vm: &crate::types::VmName) -> PathBuf {
        self.locks_dir().join(format!("{vm}.lock"))
    }
    /// The lock held while someone is attached to a machine's console (a
    /// machine name has no `.`, so it cannot meet another lock's name).
    pub fn console_lock(&self, vm: &crate::types::VmName) -> PathBuf {
        self.locks_dir().join(format!("{vm}.console.lock"))
    }
}
