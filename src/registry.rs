//! The machine registry: one JSON file per machine under `machines/`, the
//! one source of truth for a machine's owners, network, MAC and disk.
//! Files are parsed into the same types as a caller's arguments, so a
//! hand-edited file cannot carry what argv could not.

use crate::fsutil;
use crate::types::{Boot, DiskPath, ImageName, Mac, MemoryMib, Network, Principal, TemplateName, Vcpus, VmName, VolumeSize};
use crate::volume::{self, Identity};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use crate::fsutil::{io_err, PathIo};

const MAX_MACHINE_BYTES: u64 = 64 * 1024;
/// How long a registry change waits for another to finish. Changes take
/// milliseconds (an `lvcreate` a second or two), so a short wait spares
/// an admin adding machines in parallel a spurious `busy`; a stuck one
/// still ends in `busy`, never in an unbounded wait.
const LOCK_WAIT: Duration = Duration::from_secs(10);

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
    /// Who made the volume: only one the pool made may be purged with the
    /// machine. Entries written before this field was known are imported.
    #[serde(default)]
    pub volume: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Named by root with `disk=`: an existing volume, never removed by us.
    #[default]
    Imported,
    /// Made by the configured pool for this machine.
    Pool,
}

/// Where a new machine's volume comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSpec {
    /// `size=`: a new volume from the pool.
    Size(VolumeSize),
    /// `disk=`: an existing volume, named by root on the host.
    Disk(DiskPath),
}

/// A `machine add` request: a machine but for its volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMachine {
    pub name: VmName,
    pub owners: Vec<Principal>,
    pub network: Network,
    pub mac: Mac,
    pub volume: VolumeSpec,
    pub memory_mib: MemoryMib,
    pub vcpus: Vcpus,
    pub image: Option<ImageName>,
    pub template: Option<TemplateName>,
    pub boot: Boot,
}

impl NewMachine {
    pub fn with_disk(&self, disk: DiskPath, volume: Origin) -> Machine {
        Machine {
            name: self.name.clone(),
            owners: self.owners.clone(),
            network: self.network.clone(),
            mac: self.mac,
            disk,
            memory_mib: self.memory_mib,
            vcpus: self.vcpus,
            image: self.image.clone(),
            template: self.template.clone(),
            boot: self.boot,
            volume,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("machine {0} is not registered")]
    NotFound(VmName),
    #[error("machine {0} is already registered")]
    Exists(VmName),
    #[error("registry file {path} is corrupt ({message}); an admin must fix or remove it")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot access the machine registry at {0}")]
    Io(#[from] PathIo),
    #[error("another change to the machine registry is in progress; try again when it has finished")]
    Busy,
}

/// Held while the registry changes (see [`Registry::lock`]).
pub struct RegistryLock(#[allow(dead_code)] crate::lock::Lock);

/// What a new machine would share with a registered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash {
    Name,
    Disk,
    Mac,
    Ip,
    Ip6,
}

impl Clash {
    pub fn as_str(self) -> &'static str {
        match self {
            Clash::Name => "name",
            Clash::Disk => "disk",
            Clash::Mac => "mac",
            Clash::Ip => "ip",
            Clash::Ip6 => "ip6",
        }
    }
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
            Err(source) => Err(RegistryError::Io(PathIo::new(path, source))),
        }
    }

    /// Every registered machine, sorted by name. Temporary files of an
    /// interrupted write (`.tmp-*`) are not machines.
    pub fn all(&self) -> Result<Vec<Machine>, RegistryError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(RegistryError::Io(PathIo::new(self.dir.clone(), source))),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            let Ok(vm) = VmName::parse(stem) else { continue };
            out.push(self.get(&vm)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn add(&self, m: &Machine) -> Result<(), RegistryError> {
        fsutil::ensure_dir(&self.dir, 0o700).map_err(io_err(&self.dir))?;
        let path = self.path(&m.name);
        let text = serde_json::to_vec_pretty(m).expect("machine serializes");
        fsutil::create_atomic(&path, &text, 0o600).map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => RegistryError::Exists(m.name.clone()),
            _ => RegistryError::Io(PathIo::new(path, source)),
        })
    }

    pub fn remove(&self, vm: &VmName) -> Result<(), RegistryError> {
        let path = self.path(vm);
        match std::fs::remove_file(&path) {
            Ok(()) => fsutil::sync_dir(&self.dir).map_err(|source| RegistryError::Io(PathIo::new(path, source))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RegistryError::NotFound(vm.clone())),
            Err(source) => Err(RegistryError::Io(PathIo::new(path, source))),
        }
    }

    /// Serialises registry changes: an flock on the registry directory
    /// itself (made if missing), so no lock file is left behind. Waits at
    /// most [`LOCK_WAIT`], then `Busy`.
    pub fn lock(&self) -> Result<RegistryLock, RegistryError> {
        match crate::lock::lock_dir_within(&self.dir, LOCK_WAIT) {
            Ok(l) => Ok(RegistryLock(l)),
            Err(crate::lock::LockError::Held) => Err(RegistryError::Busy),
            Err(crate::lock::LockError::Io(e)) => Err(RegistryError::Io(e)),
        }
    }

    /// The registered machine a new one would clash with, if any: two
    /// guests must never share a name, a volume or an address. Volumes are
    /// compared by identity (`disk`, when it exists now) and by the names
    /// given (`path`), for registered volumes that do not exist now. Call
    /// it under the registry lock.
    pub fn clash(&self, _lock: &RegistryLock, m: &NewMachine, path: &DiskPath, disk: Option<&Identity>) -> Result<Option<(VmName, Clash)>, RegistryError> {
        for other in self.all()? {
            let same_disk = other.disk == *path
                || disk.is_some_and(|d| volume::identity(&other.disk).is_some_and(|o| o.overlaps(d)));
            let clash = if other.name == m.name {
                Clash::Name
            } else if same_disk {
                Clash::Disk
            } else if other.mac == m.mac {
                Clash::Mac
            } else if let Some(a) = other.network.addresses().into_iter().find(|a| m.network.addresses().contains(a)) {
                if a.is_ipv4() { Clash::Ip } else { Clash::Ip6 }
            } else {
                continue;
            };
            return Ok(Some((other.name, clash)));
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
