//! `[cluster]` in config.toml: cluster mode's settings (see `cluster`).

use crate::config::AbsPath;
use crate::types::{DomainName, Rule};
use serde::Deserialize;
use std::time::Duration;

/// `[cluster]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub engine: Engine,
    /// Ganeti's disk template for new instances (`drbd`, `plain`, `file`, ...).
    pub disk_template: DiskTemplate,
    /// Size of disk 0 of a new instance, MiB (at least the templates' size).
    #[serde(default = "default_disk_mib")]
    pub disk_mib: u64,
    /// Where new instances go: a primary node (and, for drbd, a
    /// secondary), or an iallocator; exactly one of node and iallocator.
    #[serde(default)]
    pub node: Option<DomainName>,
    #[serde(default)]
    pub secondary_node: Option<DomainName>,
    #[serde(default)]
    pub iallocator: Option<Word>,
    /// The OS definition's name.
    #[serde(default = "default_os")]
    pub os: Word,
    #[serde(default = "default_gnt_instance")]
    pub gnt_instance: AbsPath,
    #[serde(default = "default_gnt_job")]
    pub gnt_job: AbsPath,
    #[serde(default = "default_gnt_debug")]
    pub gnt_debug: AbsPath,
    /// Bound on one install job (disks, clone, start), seconds.
    #[serde(default = "default_job_s")]
    pub job_s: u64,
    /// Bound on every other gnt-* call, seconds.
    #[serde(default = "default_command_s")]
    pub command_s: u64,
}

fn default_disk_mib() -> u64 {
    10240
}
fn default_os() -> Word {
    Word("guest-installer".into())
}
fn default_gnt_instance() -> AbsPath {
    AbsPath::from_static("/usr/sbin/gnt-instance")
}
fn default_gnt_job() -> AbsPath {
    AbsPath::from_static("/usr/sbin/gnt-job")
}
fn default_gnt_debug() -> AbsPath {
    AbsPath::from_static("/usr/sbin/gnt-debug")
}
fn default_job_s() -> u64 {
    1800
}
fn default_command_s() -> u64 {
    300
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Ganeti,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskTemplate {
    Plain,
    Drbd,
    File,
    Sharedfile,
    Blockdev,
    Rbd,
    Ext,
    Gluster,
}

impl DiskTemplate {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskTemplate::Plain => "plain",
            DiskTemplate::Drbd => "drbd",
            DiskTemplate::File => "file",
            DiskTemplate::Sharedfile => "sharedfile",
            DiskTemplate::Blockdev => "blockdev",
            DiskTemplate::Rbd => "rbd",
            DiskTemplate::Ext => "ext",
            DiskTemplate::Gluster => "gluster",
        }
    }
}

/// A Ganeti name such as an OS or an iallocator: lowercase letters,
/// digits, '-' and '_'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word(pub(super) String);

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            Ok(Word(s))
        } else {
            Err(serde::de::Error::custom("must be 1-64 characters of a-z, 0-9, '-' and '_'"))
        }
    }
}

impl ClusterConfig {
    /// Checks what serde cannot: where instances go.
    pub fn check(&self) -> std::result::Result<(), Rule> {
        match (&self.node, &self.iallocator) {
            (Some(_), Some(_)) | (None, None) => return Err(Rule("[cluster] needs exactly one of node and iallocator")),
            _ => {}
        }
        if self.secondary_node.is_some() && self.node.is_none() {
            return Err(Rule("[cluster] secondary_node needs node"));
        }
        // Ganeti would refuse these only when the first job runs.
        let mirrored = self.disk_template == DiskTemplate::Drbd;
        if mirrored && self.node.is_some() && self.secondary_node.is_none() {
            return Err(Rule("[cluster] disk_template = \"drbd\" with node needs secondary_node (or give iallocator instead of node)"));
        }
        if !mirrored && self.secondary_node.is_some() {
            return Err(Rule("[cluster] secondary_node is for disk_template = \"drbd\" only"));
        }
        Ok(())
    }
    pub(super) fn command(&self) -> Duration {
        Duration::from_secs(self.command_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_config_needs_exactly_one_placement() {
        let base = "engine = \"ganeti\"\ndisk_template = \"drbd\"\n";
        let c: ClusterConfig = toml::from_str(&format!("{base}node = \"node1.example.org\"\nsecondary_node = \"node2.example.org\"\n")).unwrap();
        assert!(c.check().is_ok());
        let c: ClusterConfig = toml::from_str(&format!("{base}iallocator = \"hail\"\n")).unwrap();
        assert!(c.check().is_ok());
        let c: ClusterConfig = toml::from_str(base).unwrap();
        assert!(c.check().is_err());
        let c: ClusterConfig = toml::from_str(&format!("{base}node = \"n1.x\"\niallocator = \"hail\"\n")).unwrap();
        assert!(c.check().is_err());
        assert!(toml::from_str::<ClusterConfig>(&format!("{base}iallocator = \"hail; rm\"\n")).is_err());
        assert!(toml::from_str::<ClusterConfig>("engine = \"openstack\"\ndisk_template = \"drbd\"\n").is_err());
    }

    #[test]
    fn a_mirrored_disk_needs_its_secondary_and_only_it_has_one() {
        let drbd = "engine = \"ganeti\"\ndisk_template = \"drbd\"\n";
        let c: ClusterConfig = toml::from_str(&format!("{drbd}node = \"node1.example.org\"\n")).unwrap();
        assert!(c.check().unwrap_err().0.contains("needs secondary_node"));
        let plain = "engine = \"ganeti\"\ndisk_template = \"plain\"\n";
        let c: ClusterConfig = toml::from_str(&format!("{plain}node = \"node1.example.org\"\n")).unwrap();
        assert!(c.check().is_ok());
        let c: ClusterConfig = toml::from_str(&format!("{plain}node = \"node1.example.org\"\nsecondary_node = \"node2.example.org\"\n")).unwrap();
        assert!(c.check().unwrap_err().0.contains("drbd\" only"));
    }
}