//! The Xen driver: an HVM domain booting the per-VM ISO (or a PV one
//! booting the installer's kernel) with the machine's volume as its first
//! disk, started with `xl create`. While installing, `on_reboot` is
//! `destroy` so the domain disappears when the installer reboots at the
//! end, which is how we see that the install finished. Installed machines
//! and clones boot from their own disk: HVM through its boot sector, PV
//! through pvgrub2.

use super::{grub, Domain, HvError, Hypervisor};
use crate::config::Config;
use crate::exec::{self, ExecError};
use crate::fsutil;
use crate::media::{self, Media};
use crate::state::VmDir;
use crate::types::VmName;
use std::path::{Path, PathBuf};
use std::time::Duration;
use crate::fsutil::io_err;

pub struct Xl {
    program: PathBuf,
    pvgrub: PathBuf,
    console_dir: PathBuf,
    timeout: Duration,
    device_model_user: Option<String>,
}

impl Xl {
    pub fn new(config: &Config) -> Self {
        Xl {
            program: config.hypervisor.xl.path().into(),
            pvgrub: config.hypervisor.pvgrub.path().into(),
            console_dir: config.hypervisor.console_dir.path().into(),
            timeout: config.timeouts.hypervisor(),
            device_model_user: (!config.hypervisor.device_model_root).then(|| config.hypervisor.device_model_user.as_str().to_owned()),
        }
    }
}

/// The xl domain config. Every value is a validated type or a config path
/// of a safe character set, so none can close a quoted string. Guests that
/// boot from their own disk as PV guests run `pvgrub` (pvgrub2), which
/// reads the guest's own /boot/grub/grub.cfg: the host never picks their
/// kernel.
pub fn render(d: &Domain, pvgrub: &Path) -> String {
    let mut c = format!(
        "# Written by guest-installer; replaced on each install and start.\n\
         name = \"{name}\"\n\
         memory = {mem}\n\
         vcpus = {vcpus}\n",
        name = d.name,
        mem = d.memory_mib,
        vcpus = d.vcpus,
    );
    let disk = format!("\"format={}, vdev=xvda, access=rw, target={}\"", d.disk.format().as_str(), d.disk);
    let pv_loader = |extra_disk: String| {
        format!(
            "type = \"pv\"\n\
             kernel = \"{pvgrub}\"\n\
             disk = [ {disk}{extra_disk} ]\n",
            pvgrub = pvgrub.display(),
        )
    };
    // A whole-disk guest under HVM: the firmware runs the boot code in
    // its disk; its console is the emulated serial port.
    let hvm_disk = |extra_disk: String| {
        format!(
            "type = \"hvm\"\n\
             disk = [ {disk}{extra_disk} ]\n\
             boot = \"c\"\n\
             serial = \"pty\"\n"
        )
    };
    match d.media {
        Media::Clone { seed, pv } => {
            let seed = format!(",\n         \"format=raw, vdev={SEED_VDEV}, access=ro, target={}\"", seed.display());
            c.push_str(&if *pv { pv_loader(seed) } else { hvm_disk(seed) })
        }
        Media::Loader | Media::Disk { pv: true } => c.push_str(&pv_loader(String::new())),
        Media::Disk { pv: false } => c.push_str(&hvm_disk(String::new())),
        Media::Cdrom(iso) => c.push_str(&format!(
            "type = \"hvm\"\n\
             disk = [ {disk},\n         \"format=qcow2, vdev=hdc, access=ro, devtype=cdrom, target={iso}\" ]\n\
             boot = \"dc\"\n\
             serial = \"pty\"\n",
            iso = iso.display()
        )),
        Media::Kernel { kernel, initrd } => c.push_str(&format!(
            "type = \"pv\"\n\
             kernel = \"{kernel}\"\n\
             ramdisk = \"{initrd}\"\n\
             extra = \"{args} console=hvc0\"\n\
             disk = [ {disk} ]\n",
            kernel = kernel.display(),
            initrd = initrd.display(),
            args = media::INSTALLER_ARGS,
        )),
    }
    // An installer's reboot at the end is how we see it finished; any
    // other guest's reboot is a reboot.
    let on_reboot = if d.media.is_installer() { "destroy" } else { "restart" };
    c.push_str(&format!(
        "vif = [ \"mac={mac}, bridge={bridge}\" ]\n\
         on_poweroff = \"destroy\"\n\
         on_reboot = \"{on_reboot}\"\n\
         on_crash = \"destroy\"\n",
        mac = d.mac,
        bridge = d.bridge.as_str(),
    ));
    c
}

/// The identity seed's device in a clone's first boot.
const SEED_VDEV: &str = "xvdb";

impl Xl {
    fn write_config(&self, d: &Domain, vm: &VmDir) -> Result<PathBuf, HvError> {
        if matches!(d.media, Media::Loader | Media::Disk { pv: true } | Media::Clone { pv: true, .. }) {
            grub::check_file(&self.pvgrub, "grub-xen-host")?;
        }
        let path = vm.domain_config();
        let mut text = render(d, &self.pvgrub);
        if let Some(u) = &self.device_model_user {
            // Xen would fall back to root for a user that does not exist.
            if !matches!(nix::unistd::User::from_name(u), Ok(Some(_))) {
                return Err(HvError::DeviceModelUser(u.clone()));
            }
            // A validated user name: cannot close the quoted string.
            text.push_str(&format!("device_model_user = \"{u}\"\ndm_restrict = 1\n"));
        }
        fsutil::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(io_err(&path))?;
        Ok(path)
    }

    /// Runs `xl VERB NAME` on a running guest.
    fn control(&self, verb: &str, name: &VmName) -> Result<(), HvError> {
        exec::run(&self.program, &[verb, name.as_str()], self.timeout)?;
        Ok(())
    }
}

impl Hypervisor for Xl {
    fn prepare(&self, d: &Domain, vm: &VmDir) -> Result<PathBuf, HvError> {
        self.write_config(d, vm)
    }

    fn start(&self, d: &Domain, vm: &VmDir) -> Result<(), HvError> {
        // xenconsoled appends to the guest's log across boots: move the last
        // install's aside, so status and progress read only this one.
        let log = self.console_log(d.name, vm);
        if log.exists() {
            let old = log.with_extension("log.old");
            std::fs::rename(&log, &old).map_err(io_err(&log))?;
        }
        exec::run(&self.program, &["create".as_ref(), vm.domain_config().as_os_str()], self.timeout)?;
        Ok(())
    }

    fn is_running(&self, name: &VmName, _vm: &VmDir) -> Result<bool, HvError> {
        match exec::run(&self.program, &["domid", name.as_str()], self.timeout) {
            Ok(_) => Ok(true),
            // xl's own wordings when no domain has that name (`xl domid`
            // says the first; other subcommands the second).
            Err(ExecError::Failed { ref stderr, .. })
                if stderr.contains("maybe this domain does not exist") || stderr.contains("invalid domain identifier") =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn destroy(&self, name: &VmName, vm: &VmDir) -> Result<(), HvError> {
        if !self.is_running(name, vm)? {
            return Ok(());
        }
        exec::run(&self.program, &["destroy", name.as_str()], self.timeout)?;
        Ok(())
    }

    fn shutdown(&self, name: &VmName, _vm: &VmDir) -> Result<(), HvError> {
        self.control("shutdown", name)
    }

    fn reboot(&self, name: &VmName, _vm: &VmDir) -> Result<(), HvError> {
        self.control("reboot", name)
    }

    fn detach_seed(&self, d: &Domain, vm: &VmDir) -> Result<(), HvError> {
        // The file first (a later `xl create` reads it), then the running
        // domain: libxl drops the disk from the config it keeps for the
        // domain, which is what on_reboot = "restart" re-creates it from.
        self.write_config(d, vm)?;
        if self.is_running(d.name, vm)? {
            exec::run(&self.program, &["block-detach", d.name.as_str(), SEED_VDEV], self.timeout)?;
        }
        Ok(())
    }

    fn console_log(&self, name: &VmName, _vm: &VmDir) -> PathBuf {
        self.console_dir.join(format!("guest-{name}.log"))
    }

    /// xenconsoled's logs of the guest (this install's and the last).
    fn forget(&self, name: &VmName) -> Result<(), HvError> {
        let log = self.console_dir.join(format!("guest-{name}.log"));
        for p in [log.with_extension("log.old"), log] {
            crate::fsutil::remove_if_exists(&p).map_err(io_err(&p))?;
        }
        Ok(())
    }

    /// `xl console NAME` on a pseudo-terminal: its default console is the
    /// right one for both kinds (the PV console of PV guests, the emulated
    /// serial port of HVM guests). It exits when the domain goes away, so
    /// the session ends when the guest stops. Its own escape key is the
    /// door's detach key, which the door takes before xl sees it.
    fn attach_console(&self, name: &VmName, _vm: &VmDir) -> Result<super::attach::Attached, HvError> {
        super::attach::Attached::program(&self.program, &["console", name.as_str()])
    }
}
