//! Hypervisor drivers: write a domain config for a guest (an installer, a
//! clone's first boot, an installed machine), start it, tell whether it
//! still runs, ask it to shut down or reboot, stop it.

pub mod attach;
pub mod grub;
pub mod qemu;
mod qmp;
pub mod xl;

use crate::config::{Bridge, Config, Driver};
use crate::exec::ExecError;
use crate::media::Media;
use crate::state::VmDir;
use crate::types::{DiskPath, Mac, MemoryMib, Vcpus, VmName};
use std::path::PathBuf;
use crate::fsutil::PathIo;

#[derive(Debug, thiserror::Error)]
pub enum HvError {
    #[error("{0}")]
    Tool(#[from] ExecError),
    #[error("cannot write the domain config {0}")]
    Io(#[from] PathIo),
    /// The boot loader that runs inside guests is missing or cannot be made.
    #[error("the guests' boot loader {path} is not usable: {message}")]
    BootLoader { path: PathBuf, message: String },
    #[error("cannot talk to the guest's qemu over {path}: {message}")]
    Qmp { path: PathBuf, message: String },
    #[error("the device model user {0} does not exist, so Xen would run the guest's emulator as root: create it (adduser --system --no-create-home {0}; the package makes xen-qemuuser-shared) or, to let it run as root, set [hypervisor] device_model_root = true")]
    DeviceModelUser(String),
    /// The guest could not be started (the qemu driver's own launcher).
    #[error("{0}")]
    Start(String),
    /// The guest's console could not be attached to.
    #[error("{0}")]
    Console(String),
}

/// A guest, as every driver needs it.
pub struct Domain<'a> {
    pub name: &'a VmName,
    pub memory_mib: MemoryMib,
    pub vcpus: Vcpus,
    pub disk: &'a DiskPath,
    pub mac: Mac,
    pub bridge: &'a Bridge,
    pub media: &'a Media,
}

impl<'a> Domain<'a> {
    /// The guest for a registered machine booting `media`; a machine
    /// with no volume on this host (its disk is its Ganeti instance's) has
    /// none.
    pub fn for_machine(m: &'a crate::registry::Machine, config: &'a Config, media: &'a Media) -> Result<Self, crate::registry::RegistryError> {
        Ok(Domain {
            name: &m.name,
            memory_mib: m.memory_mib,
            vcpus: m.vcpus,
            disk: m.disk()?,
            mac: m.mac,
            bridge: &config.hypervisor.bridge,
            media,
        })
    }
}

pub trait Hypervisor {
    /// Writes the domain config into the VM's directory; returns its path.
    fn prepare(&self, d: &Domain, vm: &VmDir) -> Result<PathBuf, HvError>;
    /// Starts the guest from the config `prepare` wrote.
    fn start(&self, d: &Domain, vm: &VmDir) -> Result<(), HvError>;
    fn is_running(&self, name: &VmName, vm: &VmDir) -> Result<bool, HvError>;
    /// Stops the guest at once; not an error if it is already gone.
    fn destroy(&self, name: &VmName, vm: &VmDir) -> Result<(), HvError>;
    /// Asks the guest to shut down cleanly (ACPI power button, Xen's PV
    /// shutdown request) and returns without waiting for it.
    fn shutdown(&self, name: &VmName, vm: &VmDir) -> Result<(), HvError>;
    /// Asks the guest to reboot itself (its own clean reboot, not a reset)
    /// and returns without waiting for it.
    fn reboot(&self, name: &VmName, vm: &VmDir) -> Result<(), HvError>;
    /// Once a clone has applied its identity: the seed disk leaves the
    /// running guest (if the driver can detach it) and the domain config
    /// it restarts from, so that no config names the seed when it is
    /// removed. `d.media` is `Media::Loader`.
    fn detach_seed(&self, d: &Domain, vm: &VmDir) -> Result<(), HvError>;
    /// Where the guest's serial console is logged.
    fn console_log(&self, name: &VmName, vm: &VmDir) -> PathBuf;
    /// Attaches to the running guest's serial console, for one
    /// interactive session (the console door); it ends when the guest stops.
    fn attach_console(&self, name: &VmName, vm: &VmDir) -> Result<attach::Attached, HvError>;
    /// Removes what the driver keeps of a machine outside its directory
    /// (which `machine remove` removes), so that a new machine of the
    /// same name never shows its new owner the old one's console.
    fn forget(&self, _name: &VmName) -> Result<(), HvError> {
        Ok(())
    }
}

pub fn for_config(config: &Config) -> Result<Box<dyn Hypervisor>, HvError> {
    match config.hypervisor.driver {
        Driver::Xl => Ok(Box::new(xl::Xl::new(config))),
        Driver::Qemu => Ok(Box::new(qemu::Qemu::new(config))),
    }
}
