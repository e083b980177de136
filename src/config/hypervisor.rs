//! The `[hypervisor]` section: which driver runs guests, the programs and
//! files it uses, and the users and limits it runs them under.

use super::AbsPath;
use crate::types::Rule;
use serde::Deserialize;

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
    /// The qemu driver runs each guest's qemu as a uid of its own from
    /// this range (with `qemu_user`'s groups), so that one guest's qemu
    /// cannot reach another's through /proc.
    #[serde(default)]
    pub qemu_uids: QemuUids,
    /// xl: run the device model as this user, with `dm_restrict` (Xen's
    /// shared user by default; the package makes it).
    #[serde(default = "default_device_model_user")]
    pub device_model_user: UserName,
    /// xl: leave the device model to Xen's own default, which is root:
    /// only when the admin says so.
    #[serde(default)]
    pub device_model_root: bool,
}

/// Xen's documented name for one device-model user shared by all domains
/// (its qemu-deprivilege document).
pub const XEN_SHARED_DM_USER: &str = "xen-qemuuser-shared";

fn default_device_model_user() -> UserName {
    UserName(XEN_SHARED_DM_USER.into())
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

/// `qemu_uid_base` and `qemu_uid_count`: guests run as uids base+1 to
/// base+count (base itself is the range's own marker user, as Xen's
/// xen-qemuuser-range-base is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuUids {
    pub base: u32,
    pub count: u32,
}

/// Above what adduser, subordinate ids (up to 600,100,000 by default) and
/// systemd's container ranges (up to 1,879,048,191) hand out.
pub const DEFAULT_QEMU_UID_BASE: u32 = 1_879_048_192;

impl Default for QemuUids {
    fn default() -> Self {
        QemuUids { base: DEFAULT_QEMU_UID_BASE, count: 4096 }
    }
}

impl<'de> Deserialize<'de> for QemuUids {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            base: u32,
            #[serde(default = "default_count")]
            count: u32,
        }
        fn default_count() -> u32 {
            4096
        }
        let r = Raw::deserialize(d)?;
        // Never a system or login user's uid, never near the sign bit.
        if r.base < 65536 || r.count == 0 || r.count > 65536 || u64::from(r.base) + u64::from(r.count) >= 1 << 31 {
            return Err(serde::de::Error::custom(
                "hypervisor.qemu_uids needs base >= 65536 and count 1 to 65536, with base + count below 2^31",
            ));
        }
        Ok(QemuUids { base: r.base, count: r.count })
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
