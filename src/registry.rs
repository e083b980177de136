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
#[serde(try_from = "MachineFile", into = "MachineFile")]
pub struct Machine {
    pub name: VmName,
    pub owners: Vec<Principal>,
    pub network: Network,
    pub mac: Mac,
    pub storage: Storage,
    pub memory_mib: MemoryMib,
    pub vcpus: Vcpus,
    #[serde(default)]
    pub image: Option<ImageName>,
    /// The golden template `install VM` clones when the request names
    /// neither an image nor a template (wins over `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateName>,
    pub boot: Boot,
}

/// Where a machine's disk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A volume on this host. Only one the pool made may be purged with
    /// the machine.
    Volume { disk: DiskPath, origin: Origin },
    /// Disk 0 of the machine's Ganeti instance, of this size, which Ganeti
    /// makes when the machine is first installed (a machine added in
    /// cluster mode): there is no path on this host.
    Instance { size: VolumeSize },
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

impl Machine {
    /// Whether Xen runs the machine as a PV guest (through pvgrub once it
    /// boots its own disk): one installed the PV way, and its clones.
    pub fn runs_pv(&self) -> bool {
        self.boot == Boot::PvInitrd
    }

    /// The machine's volume on this host; a machine whose disk is its
    /// Ganeti instance's has none.
    pub fn disk(&self) -> Result<&DiskPath, RegistryError> {
        match &self.storage {
            Storage::Volume { disk, .. } => Ok(disk),
            Storage::Instance { .. } => Err(RegistryError::NoVolume(self.name.clone())),
        }
    }
}

/// A registry file: the machine's fields as they are stored. `disk` and
/// `volume` (the origin) are there for a volume on this host, `volume =
/// "instance"` and `size` for a machine whose disk is its instance's; a
/// file with both or neither is corrupt. Files written before `volume`
/// existed name an imported volume.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineFile {
    name: VmName,
    owners: Vec<Principal>,
    network: Network,
    mac: Mac,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disk: Option<DiskPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<VolumeSize>,
    memory_mib: MemoryMib,
    vcpus: Vcpus,
    #[serde(default)]
    image: Option<ImageName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template: Option<TemplateName>,
    #[serde(default)]
    boot: Boot,
    #[serde(default)]
    volume: FileOrigin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileOrigin {
    #[default]
    Imported,
    Pool,
    Instance,
}

impl TryFrom<MachineFile> for Machine {
    type Error = &'static str;
    fn try_from(f: MachineFile) -> Result<Self, &'static str> {
        let storage = match (f.volume, f.disk, f.size) {
            (FileOrigin::Imported, Some(disk), None) => Storage::Volume { disk, origin: Origin::Imported },
            (FileOrigin::Pool, Some(disk), None) => Storage::Volume { disk, origin: Origin::Pool },
            (FileOrigin::Instance, None, Some(size)) => Storage::Instance { size },
            (FileOrigin::Instance, _, _) => return Err("an instance's disk has a size and no path"),
            _ => return Err("a volume on the host has a path and no size"),
        };
        Ok(Machine {
            name: f.name,
            owners: f.owners,
            network: f.network,
            mac: f.mac,
            storage,
            memory_mib: f.memory_mib,
            vcpus: f.vcpus,
            image: f.image,
            template: f.template,
            boot: f.boot,
        })
    }
}

impl From<Machine> for MachineFile {
    fn from(m: Machine) -> Self {
        let (disk, size, volume) = match m.storage {
            Storage::Volume { disk, origin: Origin::Imported } => (Some(disk), None, FileOrigin::Imported),
            Storage::Volume { disk, origin: Origin::Pool } => (Some(disk), None, FileOrigin::Pool),
            Storage::Instance { size } => (None, Some(size), FileOrigin::Instance),
        };
        MachineFile {
            name: m.name,
            owners: m.owners,
            network: m.network,
            mac: m.mac,
            disk,
            size,
            memory_mib: m.memory_mib,
            vcpus: m.vcpus,
            image: m.image,
            template: m.template,
            boot: m.boot,
            volume,
        }
    }
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
    pub fn with_storage(&self, storage: Storage) -> Machine {
        Machine {
            name: self.name.clone(),
            owners: self.owners.clone(),
            network: self.network.clone(),
            mac: self.mac,
            storage,
            memory_mib: self.memory_mib,
            vcpus: self.vcpus,
            image: self.image.clone(),
            template: self.template.clone(),
            boot: self.boot,
        }
    }

    pub fn with_disk(&self, disk: DiskPath, origin: Origin) -> Machine {
        self.with_storage(Storage::Volume { disk, origin })
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
    #[error("machine {0} has no volume on this host: its disk is its Ganeti instance's (it was added in cluster mode), so only cluster mode manages it")]
    NoVolume(VmName),
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
    /// `path` is None for a machine whose disk will be its instance's.
    pub fn clash(&self, _lock: &RegistryLock, m: &NewMachine, path: Option<&DiskPath>, disk: Option<&Identity>) -> Result<Option<(VmName, Clash)>, RegistryError> {
        for other in self.all()? {
            let same_disk = match (&other.storage, path) {
                (Storage::Volume { disk: theirs, .. }, Some(path)) => {
                    theirs == path || disk.is_some_and(|d| volume::identity(theirs).is_some_and(|o| o.overlaps(d)))
                }
                _ => false,
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"name":"web1","owners":["bob@EXAMPLE.ORG"],"network":{{"ip":"192.0.2.10","netmask":"255.255.255.0","gateway":"192.0.2.1","nameservers":["192.0.2.53"]}},"mac":"00:16:3e:00:00:01","memory_mib":512,"vcpus":1,"image":null{extra}}}"#
        )
        .into_bytes()
    }

    /// A machine's disk is a volume on the host (named by root, or made by
    /// the pool; files from before `volume` existed are named volumes) or
    /// disk 0 of its Ganeti instance, with a size and no path; a file that
    /// mixes the two is corrupt, and each kind is written back as read.
    #[test]
    fn a_disk_is_a_host_volume_or_an_instances_never_both() {
        let p = Path::new("/r/web1.json");
        let old = parse(p, &file(r#","disk":"/dev/vg/web1""#), None).unwrap();
        assert_eq!(old.storage, Storage::Volume { disk: DiskPath::parse("/dev/vg/web1").unwrap(), origin: Origin::Imported });
        let pool = parse(p, &file(r#","disk":"/dev/vg/web1","volume":"pool""#), None).unwrap();
        assert!(matches!(pool.storage, Storage::Volume { origin: Origin::Pool, .. }));
        let inst = parse(p, &file(r#","size":3221225472,"volume":"instance""#), None).unwrap();
        assert_eq!(inst.storage, Storage::Instance { size: VolumeSize::parse("3G").unwrap() });
        assert!(matches!(inst.disk(), Err(RegistryError::NoVolume(_))));
        for m in [&old, &pool, &inst] {
            assert_eq!(&parse(p, &serde_json::to_vec(m).unwrap(), None).unwrap(), m);
        }
        let v = serde_json::to_value(&inst).unwrap();
        assert!(v.get("disk").is_none() && v["size"] == 3221225472u64 && v["volume"] == "instance", "{v}");
        for bad in [
            r#","disk":"/dev/vg/web1","size":3221225472"#,
            r#","disk":"/dev/vg/web1","volume":"instance""#,
            r#","size":3221225472,"volume":"instance","disk":"/x""#,
            r#","size":3221225472"#,
            r#","volume":"instance""#,
            "",
            r#","size":1000,"volume":"instance""#,
        ] {
            assert!(matches!(parse(p, &file(bad), None), Err(RegistryError::Corrupt { .. })), "{bad}");
        }
    }
}
