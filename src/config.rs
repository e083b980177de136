//! `/etc/guest-installer/config.toml` (or `$GUEST_INSTALLER_CONFIG`).
//! Only whoever starts the program chooses the config: no argument can.

use crate::types::{DiskPath, DomainName, Principal, Rule};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/guest-installer/config.toml";
pub const ENV_VAR: &str = "GUEST_INSTALLER_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path} is not trusted: {reason}")]
    Untrusted { path: PathBuf, reason: crate::trust::Untrusted },
}

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
    #[serde(default = "default_umount")]
    pub umount: AbsPath,
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
fn default_umount() -> AbsPath {
    AbsPath("/usr/bin/umount".into())
}
fn default_debugfs() -> AbsPath {
    AbsPath("/usr/sbin/debugfs".into())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    pub host: MirrorHost,
    pub directory: MirrorDir,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Xl,
    Qemu,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hypervisor {
    #[serde(default = "default_driver")]
    pub driver: Driver,
    #[serde(default = "default_xl")]
    pub xl: AbsPath,
    #[serde(default = "default_qemu")]
    pub qemu: AbsPath,
    #[serde(default = "default_bridge")]
    pub bridge: Bridge,
    /// The qemu driver's network: the bridge, or user networking with no
    /// way out (tests and demos).
    #[serde(default)]
    pub qemu_net: QemuNet,
    /// Where xenconsoled (XENCONSOLED_TRACE=guest) writes guest-NAME.log.
    #[serde(default = "default_console_dir")]
    pub console_dir: AbsPath,
    /// The boot loader Xen runs inside PV guests booting from their own
    /// disk (pvgrub2, Debian's grub-xen-host).
    #[serde(default = "default_pvgrub")]
    pub pvgrub: AbsPath,
    /// Makes the GRUB image qemu loads for guests booting from their own
    /// disk (grub-pc-bin), from the modules in `grub_pc`.
    #[serde(default = "default_grub_mkimage")]
    pub grub_mkimage: AbsPath,
    #[serde(default = "default_grub_pc")]
    pub grub_pc: AbsPath,
    /// The system user the qemu driver runs qemu as (never root).
    #[serde(default = "default_qemu_user")]
    pub qemu_user: UserName,
    /// The qemu driver keeps a guest's console log under this size: its
    /// first half and its latest output.
    #[serde(default = "default_console_log_max_mib")]
    pub console_log_max_mib: ConsoleLogMax,
    /// xl: run the device model as this user, with `dm_restrict`.
    #[serde(default)]
    pub device_model_user: Option<UserName>,
}

fn default_pvgrub() -> AbsPath {
    AbsPath("/usr/lib/grub-xen/grub-x86_64-xen.bin".into())
}
fn default_grub_mkimage() -> AbsPath {
    AbsPath("/usr/bin/grub-mkimage".into())
}
fn default_grub_pc() -> AbsPath {
    AbsPath("/usr/lib/grub/i386-pc".into())
}

fn default_qemu_user() -> UserName {
    UserName("guest-installer-qemu".into())
}
fn default_console_log_max_mib() -> ConsoleLogMax {
    ConsoleLogMax(16)
}

/// A console log cap in MiB, 1 to 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleLogMax(u32);

impl ConsoleLogMax {
    pub fn bytes(self) -> u64 {
        u64::from(self.0) << 20
    }
}

impl<'de> Deserialize<'de> for ConsoleLogMax {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if (1..=4096).contains(&n) {
            Ok(ConsoleLogMax(n))
        } else {
            Err(serde::de::Error::custom("hypervisor.console_log_max_mib must be 1 to 4096"))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QemuNet {
    #[default]
    Bridge,
    User,
}

fn default_driver() -> Driver {
    Driver::Xl
}
fn default_xl() -> AbsPath {
    AbsPath("/usr/sbin/xl".into())
}
fn default_qemu() -> AbsPath {
    AbsPath("/usr/bin/qemu-system-x86_64".into())
}
fn default_bridge() -> Bridge {
    Bridge("xenbr0".into())
}
fn default_console_dir() -> AbsPath {
    AbsPath("/var/log/xen/console".into())
}

/// Time limits for external programs, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// xorriso extracting or writing an image.
    #[serde(default = "default_tool_s")]
    pub tool_s: u64,
    /// The hypervisor's control program (`xl create`, `xl destroy`, ...).
    #[serde(default = "default_hypervisor_s")]
    pub hypervisor_s: u64,
    /// A whole template build (mmdebstrap downloads ~150 packages; the
    /// installer builder's guest must stop within it).
    #[serde(default = "default_template_s")]
    pub template_s: u64,
    /// How long `install --no-start` media (they hold the password hash)
    /// may wait to be used before `settle` removes them.
    #[serde(default = "default_prepared_media_s")]
    pub prepared_media_s: u64,
    /// How long `stop --force` waits for a clean shutdown before it
    /// destroys the guest.
    #[serde(default = "default_stop_s")]
    pub stop_s: u64,
}

fn default_prepared_media_s() -> u64 {
    3600
}

fn default_stop_s() -> u64 {
    60
}

fn default_template_s() -> u64 {
    1800
}

fn default_tool_s() -> u64 {
    600
}
fn default_hypervisor_s() -> u64 {
    60
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tool_s: default_tool_s(),
            hypervisor_s: default_hypervisor_s(),
            template_s: default_template_s(),
            prepared_media_s: default_prepared_media_s(),
            stop_s: default_stop_s(),
        }
    }
}

impl Timeouts {
    pub fn tool(&self) -> Duration {
        Duration::from_secs(self.tool_s)
    }
    pub fn hypervisor(&self) -> Duration {
        Duration::from_secs(self.hypervisor_s)
    }
    pub fn template(&self) -> Duration {
        Duration::from_secs(self.template_s)
    }
    pub fn stop(&self) -> Duration {
        Duration::from_secs(self.stop_s)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// The syslog socket; tests point it at a socket of their own.
    #[serde(default = "default_syslog_socket")]
    pub syslog_socket: AbsPath,
}

/// Where audit records go when the config names no other socket, or
/// cannot be read at all.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

fn default_syslog_socket() -> AbsPath {
    AbsPath(DEFAULT_SYSLOG_SOCKET.into())
}

impl Default for Audit {
    fn default() -> Self {
        Audit { syslog_socket: default_syslog_socket() }
    }
}

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

checked_string!(
    /// A mirror host name or address, optionally with `:port`.
    MirrorHost,
    |s| !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b)),
    "mirror.host must be a host name or address (letters, digits, '.', '-', ':')"
);
checked_string!(
    /// The mirror's directory, e.g. `/debian`.
    MirrorDir,
    |s| s.starts_with('/') && s.len() <= 255 && !s.contains("..") && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)),
    "mirror.directory must be an absolute path of letters, digits, '/', '.', '_' and '-'"
);
checked_string!(
    /// A bridge interface name.
    Bridge,
    |s| !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
    "hypervisor.bridge must be an interface name of at most 15 letters, digits, '.', '_' or '-'"
);

checked_string!(
    /// A system user name (it ends up in a domain config).
    UserName,
    |s| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 32
            && (b[0].is_ascii_lowercase() || b[0] == b'_')
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-".contains(c))
    },
    "a user name must be 1 to 32 lowercase letters, digits, '_' or '-', starting with a letter or '_'"
);

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
    /// Where the config is: the environment variable (set by whoever
    /// starts remctld, never by a remote caller) or the default.
    pub fn location() -> PathBuf {
        std::env::var_os(ENV_VAR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }

    /// Reads the config if only root can change it (see [`crate::trust`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = crate::trust::read(path, crate::trust::MAX_BYTES).map_err(|e| match e {
            crate::trust::Untrusted::Io(source) => ConfigError::Read { path: path.into(), source },
            reason => ConfigError::Untrusted { path: path.into(), reason },
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::Parse { path: path.into(), message: "it is not UTF-8 text".into() })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if let Some(cluster) = &c.cluster {
            cluster.check().map_err(|r| r.0.to_owned())?;
        }
        Ok(c)
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
state_dir = "/var/lib/guest-installer"
preseed_template = "/etc/guest-installer/preseed.cfg"
admins = ["alice/admin@EXAMPLE.ORG"]
domain = "example.org"
[mirror]
host = "deb.debian.org"
directory = "/debian"
[hypervisor]
driver = "xl"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MIN).unwrap();
        assert_eq!(c.hypervisor.driver, Driver::Xl);
        assert_eq!(c.hypervisor.xl.path(), Path::new("/usr/sbin/xl"));
        assert_eq!(c.timeouts.hypervisor_s, 60);
        assert_eq!(c.hypervisor.qemu_user.as_str(), "guest-installer-qemu");
        assert_eq!(c.hypervisor.console_log_max_mib.bytes(), 16 << 20);
        assert!(c.hypervisor.device_model_user.is_none());
    }

    #[test]
    fn device_model_users_and_log_caps_are_checked() {
        let with = |extra: &str| Config::parse(&format!("{MIN}{extra}\n"));
        let c = with("device_model_user = \"xen-qemuuser-shared\"\nconsole_log_max_mib = 1").unwrap();
        assert_eq!(c.hypervisor.device_model_user.unwrap().as_str(), "xen-qemuuser-shared");
        assert_eq!(c.hypervisor.console_log_max_mib.bytes(), 1 << 20);
        for bad in [
            "device_model_user = \"root\\\"\"",
            "device_model_user = \"\"",
            "device_model_user = \"Xen\"",
            "qemu_user = \"a b\"",
            "console_log_max_mib = 0",
            "console_log_max_mib = 5000",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::parse(&format!("{MIN}\nbogus = 1\n")).is_err());
        assert!(Config::parse(&MIN.replace("/debian", "/debian\\\"\\n")).is_err());
        assert!(Config::parse(&MIN.replace("\"xl\"", "\"kvm\"")).is_err());
        assert!(Config::parse(&MIN.replace("alice/admin@EXAMPLE.ORG", "alice@")).is_err());
        assert!(Config::parse(&MIN.replace("/var/lib/guest-installer", "var/lib")).is_err());
    }
}
