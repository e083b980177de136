//! A machine's install state and the files of its per-VM directory.

use crate::config::{Config, Driver};
use crate::fsutil;
use crate::sshkey::Fingerprint;
use crate::types::{ImageName, TemplateName, VmName};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use crate::fsutil::PathIo;

const MAX_STATE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prepared,
    /// Saved before the hypervisor is asked to start the guest.
    Starting,
    Installing,
    Installed,
    Failed,
    Cancelled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prepared => "prepared",
            Phase::Starting => "starting",
            Phase::Installing => "installing",
            Phase::Installed => "installed",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmState {
    pub phase: Phase,
    /// The installer image the install (or its template) is from; None
    /// for a clone of a template built from the mirror alone.
    pub image: Option<ImageName>,
    pub driver: Driver,
    /// Unix seconds.
    pub prepared_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// Why the install failed, in words for the owner (never a secret).
    #[serde(default)]
    pub reason: Option<String>,
    /// Set when the machine was cloned from a golden template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateName>,
    /// The guest's SSH host key, recorded when the install is: a clone's
    /// identity unit prints it on the first boot's console before anyone
    /// can log in, and that console is gone after the next start.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "host_key")]
    pub ssh_host_key: Option<Fingerprint>,
    /// A clone of a whole-disk template, which boots from its own disk.
    /// False for clones recorded before templates were whole disks: bare
    /// filesystems, which boot through a loader the host hands them.
    #[serde(default)]
    pub whole_disk: bool,
}

/// A recorded host key is read back through the same parser as a key
/// from the console: a hand-edited state file cannot show anything else.
mod host_key {
    use crate::sshkey::Fingerprint;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(fp: &Option<Fingerprint>, s: S) -> Result<S::Ok, S::Error> {
        match fp {
            Some(fp) => s.serialize_str(fp.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Fingerprint>, D::Error> {
        Option::<String>::deserialize(d)?.map(|s| Fingerprint::parse(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

impl VmState {
    /// A new install whose media and domain config have just been written.
    pub fn prepared(image: Option<ImageName>, driver: Driver, template: Option<TemplateName>) -> Self {
        VmState {
            phase: Phase::Prepared,
            image,
            driver,
            prepared_at: now(),
            started_at: None,
            finished_at: None,
            reason: None,
            // Every clone made now is of a whole-disk template (a bare
            // one is refused before anything is prepared).
            whole_disk: template.is_some(),
            template,
            ssh_host_key: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {0}")]
    Read(PathIo),
    #[error("state file {path} is corrupt ({message}); an admin must fix or remove it")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write state file {0}")]
    Write(PathIo),
}

/// The files of one machine under `vms/VM/`.
#[derive(Debug, Clone)]
pub struct VmDir {
    pub dir: PathBuf,
}

impl VmDir {
    pub fn new(config: &Config, vm: &VmName) -> Self {
        VmDir { dir: config.vms_dir().join(vm.as_str()) }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// The per-VM CD image (qcow2 over the image's base ISO).
    pub fn cdrom(&self) -> PathBuf {
        self.dir.join("install.qcow2")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.gz")
    }
    pub fn domain_config(&self) -> PathBuf {
        self.dir.join("domain.cfg")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    /// A clone's identity seed disk (holds the root password hash).
    pub fn identity_seed(&self) -> PathBuf {
        self.dir.join("identity.img")
    }

    /// Every file that holds the root password hash.
    pub fn media(&self) -> [PathBuf; 3] {
        [self.cdrom(), self.initrd(), self.identity_seed()]
    }

    pub fn load(&self) -> Result<Option<VmState>, StateError> {
        load(&self.state())
    }

    pub fn save(&self, s: &VmState) -> Result<(), StateError> {
        let path = self.state();
        let text = serde_json::to_vec_pretty(s).expect("state serializes");
        fsutil::write_atomic(&path, &text, 0o600).map_err(|source| StateError::Write(PathIo::new(path, source)))
    }

    /// Removes the per-VM media (it holds the password hash).
    pub fn remove_media(&self) -> io::Result<()> {
        for p in self.media() {
            fsutil::remove_if_exists(&p)?;
        }
        Ok(())
    }
}

pub fn load(path: &Path) -> Result<Option<VmState>, StateError> {
    let bytes = match fsutil::read_limited(path, MAX_STATE_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Read(PathIo::new(path, source))),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt { path: path.into(), message: e.to_string() })
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 UTC time for humans and JSON.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clone recorded before templates were whole disks is a bare
    /// filesystem (it keeps booting through the host's loader); every
    /// clone recorded now boots from its own disk; an installer install
    /// is no clone.
    #[test]
    fn only_clones_recorded_now_are_whole_disks() {
        let old = br#"{"phase":"installed","image":null,"driver":"qemu","prepared_at":1,"started_at":2,"finished_at":3,"template":"tpl"}"#;
        let st: VmState = serde_json::from_slice(old).unwrap();
        assert!(st.template.is_some() && !st.whole_disk);
        let tpl = TemplateName::parse("tpl").unwrap();
        let new = VmState::prepared(None, Driver::Qemu, Some(tpl));
        assert!(new.whole_disk);
        let back: VmState = serde_json::from_slice(&serde_json::to_vec(&new).unwrap()).unwrap();
        assert!(back.whole_disk);
        assert!(!VmState::prepared(None, Driver::Qemu, None).whole_disk);
    }
}
