//! The machine registry: one JSON file per machine under `machines/`, the
//! one source of truth for a machine's owners, network, MAC and disk.
//! Files are parsed into the same types as a caller's arguments, so a
//! hand-edited file cannot carry what argv could not.

use crate::fsutil;
use crate::types::{Boot, DiskPath, ImageName, Mac, MemoryMib, Network, Principal, TemplateName, Vcpus, VmName};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

const MAX_MACHINE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub name: VmName,
    pub owners: Vec<Principal>,
    pub network: Network,
    pub mac: Mac,
    pub disk: DiskPath,
    pub memory_mib: MemoryMib,
    pub vcpus: Vcpus,
    #[serde(default)]
    pub image: Option<ImageName>,
    /// The golden template `install VM` clones when the request names
    /// neither an image nor a template (wins over `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateName>,
    #[serde(default)]
    pub boot: Boot,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("machine {0} is not registered")]
    NotFound(VmName),
    #[error("machine {0} is already registered")]
    Exists(VmName),
    #[error("registry file {path} is corrupt ({message}); an admin must fix or remove it")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot access the machine registry at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    pub fn new(dir: PathBuf) -> Self {
        Registry { dir }
    }

    fn path(&self, vm: &VmName) -> PathBuf {
        self.dir.join(format!("{vm}.json"))
    }

    pub fn get(&self, vm: &VmName) -> Result<Machine, RegistryError> {
        let path = self.path(vm);
        match fsutil::read_limited(&path, MAX_MACHINE_BYTES) {
            Ok(bytes) => parse(&path, &bytes, Some(vm)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RegistryError::NotFound(vm.clone())),
            Err(source) => Err(RegistryError::Io { path, source }),
        }
    }

    /// Every registered machine, sorted by name. Temporary files of an
    /// interrupted write (`.tmp-*`) are not machines.
    pub fn all(&self) -> Result<Vec<Machine>, RegistryError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(RegistryError::Io { path: self.dir.clone(), source }),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| RegistryError::Io { path: self.dir.clone(), source })?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            let Ok(vm) = VmName::parse(stem) else { continue };
            out.push(self.get(&vm)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn add(&self, m: &Machine) -> Result<(), RegistryError> {
        fsutil::ensure_dir(&self.dir, 0o700).map_err(|source| RegistryError::Io { path: self.dir.clone(), source })?;
        let path = self.path(&m.name);
        let text = serde_json::to_vec_pretty(m).expect("machine serializes");
        fsutil::create_atomic(&path, &text, 0o600).map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => RegistryError::Exists(m.name.clone()),
            _ => RegistryError::Io { path, source },
        })
    }

    pub fn remove(&self, vm: &VmName) -> Result<(), RegistryError> {
        let path = self.path(vm);
        match std::fs::remove_file(&path) {
            Ok(()) => fsutil::sync_dir(&self.dir).map_err(|source| RegistryError::Io { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RegistryError::NotFound(vm.clone())),
            Err(source) => Err(RegistryError::Io { path, source }),
        }
    }

    /// Machines already using `disk` or `mac` (two guests must never share a
    /// volume or an address).
    pub fn conflicts(&self, m: &Machine) -> Result<Option<(VmName, &'static str)>, RegistryError> {
        for other in self.all()? {
            if other.disk == m.disk {
                return Ok(Some((other.name, "disk")));
            }
            if other.mac == m.mac {
                return Ok(Some((other.name, "mac")));
            }
            if other.network.ip() == m.network.ip() {
                return Ok(Some((other.name, "ip")));
            }
        }
        Ok(None)
    }
}

fn parse(path: &Path, bytes: &[u8], expect: Option<&VmName>) -> Result<Machine, RegistryError> {
    let m: Machine = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::Corrupt { path: path.into(), message: e.to_string() })?;
    if expect.is_some_and(|vm| *vm != m.name) {
        return Err(RegistryError::Corrupt { path: path.into(), message: "its name does not match its file name".into() });
    }
    if m.owners.is_empty() {
        return Err(RegistryError::Corrupt { path: path.into(), message: "it lists no owner".into() });
    }
    Ok(m)
}
