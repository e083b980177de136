//! The qemu driver, for KVM hosts and for every machine without Xen (the
//! demo, the boot tests): the same media and disk as the xl driver, the
//! serial console logged to the VM's directory, `-no-reboot` as the
//! counterpart of xl's `on_reboot="destroy"`, KVM when it works and TCG
//! otherwise.

use super::{grub::GrubPc, qmp, Domain, HvError, Hypervisor};
use crate::config::{Config, QemuNet};
use crate::exec;
use crate::fsutil;
use crate::media::{self, Media};
use crate::state::VmDir;
use crate::types::VmName;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Qemu {
    program: PathBuf,
    net: QemuNet,
    bridge: String,
    timeout: Duration,
    grub: GrubPc,
}

/// KVM only if the CPU has hardware virtualisation and /dev/kvm is there:
/// on these build machines /dev/kvm exists without vmx/svm, and qemu
/// then starts under KVM and dies at the first real-mode instruction, so
/// asking qemu to try KVM first is not enough.
pub fn kvm_usable() -> bool {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = flags
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    hw && std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

impl Qemu {
    pub fn new(config: &Config) -> Self {
        Qemu {
            program: config.hypervisor.qemu.path().into(),
            net: config.hypervisor.qemu_net,
            bridge: config.hypervisor.bridge.as_str().to_owned(),
            timeout: config.timeouts.hypervisor(),
            grub: GrubPc {
                mkimage: config.hypervisor.grub_mkimage.path().into(),
                modules: config.hypervisor.grub_pc.path().into(),
                out_dir: config.state_dir.path().join("boot"),
                timeout: config.timeouts.tool(),
            },
        }
    }

    /// qemu's control socket, for clean shutdowns and reboots.
    pub fn qmp_socket(vm: &VmDir) -> PathBuf {
        vm.dir.join("qmp.sock")
    }

    /// Makes sure what `args` names exists: the GRUB image, for guests
    /// that boot through it.
    fn ensure_loader(&self, d: &Domain) -> Result<(), HvError> {
        if matches!(d.media, Media::Clone { .. } | Media::Loader) {
            self.grub.image()?;
        }
        Ok(())
    }

    /// The whole command line. Values are validated types and config paths
    /// of a safe character set; commas (qemu's option separator) cannot
    /// occur in any of them.
    pub fn args(&self, d: &Domain, vm: &VmDir) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: String| a.push(s.into());
        push("-name".into());
        push(format!("guest={},process=gi-{}", d.name, d.name));
        push("-accel".into());
        push(if kvm_usable() { "kvm" } else { "tcg" }.into());
        push("-m".into());
        push(d.memory_mib.to_string());
        push("-smp".into());
        push(d.vcpus.to_string());
        push("-display".into());
        push("none".into());
        push("-monitor".into());
        push("none".into());
        push("-serial".into());
        push(format!("file:{}", vm.console_log().display()));
        if d.media.is_installer() {
            // The installer's reboot at the end is how we see it finished.
            push("-no-reboot".into());
        }
        push("-qmp".into());
        push(format!("unix:{},server=on,wait=off", Self::qmp_socket(vm).display()));
        push("-daemonize".into());
        push("-pidfile".into());
        push(vm.pidfile().display().to_string());
        push("-drive".into());
        push(format!("file={},format={},if=virtio", d.disk, d.disk.format().as_str()));
        match d.media {
            // GRUB, which boots what the guest's own grub.cfg names.
            Media::Clone { seed } => {
                push("-drive".into());
                push(format!("file={},format=raw,if=virtio,readonly=on", seed.display()));
                push("-kernel".into());
                push(self.grub.path().display().to_string());
            }
            Media::Loader => {
                push("-kernel".into());
                push(self.grub.path().display().to_string());
            }
            Media::Disk { .. } => {
                push("-boot".into());
                push("c".into());
            }
            Media::Cdrom(iso) => {
                push("-drive".into());
                push(format!("file={},format=qcow2,media=cdrom,readonly=on", iso.display()));
                push("-boot".into());
                push("d".into());
            }
            Media::Kernel { kernel, initrd } => {
                push("-kernel".into());
                push(kernel.display().to_string());
                push("-initrd".into());
                push(initrd.display().to_string());
                push("-append".into());
                push(format!("{} console=ttyS0,115200n8", media::INSTALLER_ARGS));
            }
        }
        push("-nic".into());
        push(match self.net {
            // No way out of the guest: for tests and demos.
            QemuNet::User => format!("user,model=virtio-net-pci,mac={},restrict=on", d.mac),
            QemuNet::Bridge => format!("bridge,br={},model=virtio-net-pci,mac={}", self.bridge, d.mac),
        });
        a
    }

    /// The pid in the pidfile, if that process is still our qemu for this VM.
    fn pid(&self, name: &VmName, vm: &VmDir) -> Option<nix::unistd::Pid> {
        let text = fsutil::read_limited(&vm.pidfile(), 32).ok()?;
        let pid: i32 = std::str::from_utf8(&text).ok()?.trim().parse().ok()?;
        if pid <= 1 {
            return None;
        }
        // A stale pidfile may name a recycled pid: check it is really ours.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let marker = format!("guest={name},process=gi-{name}");
        cmdline.split(|b| *b == 0).any(|arg| arg == marker.as_bytes()).then(|| nix::unistd::Pid::from_raw(pid))
    }
}

impl Hypervisor for Qemu {
    fn prepare(&self, d: &Domain, vm: &VmDir) -> Result<PathBuf, HvError> {
        self.ensure_loader(d)?;
        // Not read back: a record of what is run, for the admin.
        let path = vm.domain_config();
        let mut text = String::from("# qemu command line written by guest-installer; one argument per line\n");
        text.push_str(&self.program.display().to_string());
        text.push('\n');
        for a in self.args(d, vm) {
            text.push_str(&a.to_string_lossy());
            text.push('\n');
        }
        fsutil::write_atomic(&path, text.as_bytes(), 0o600).map_err(|source| HvError::Io { path: path.clone(), source })?;
        Ok(path)
    }

    fn start(&self, d: &Domain, vm: &VmDir) -> Result<(), HvError> {
        self.ensure_loader(d)?;
        for p in [vm.console_log(), vm.pidfile(), Self::qmp_socket(vm)] {
            fsutil::remove_if_exists(&p).map_err(|source| HvError::Io { path: p.clone(), source })?;
        }
        exec::run(&self.program, &self.args(d, vm), self.timeout)?;
        Ok(())
    }

    fn is_running(&self, name: &VmName, vm: &VmDir) -> Result<bool, HvError> {
        Ok(self.pid(name, vm).is_some())
    }

    fn destroy(&self, name: &VmName, vm: &VmDir) -> Result<(), HvError> {
        use nix::sys::signal::{kill, Signal};
        let Some(pid) = self.pid(name, vm) else { return Ok(()) };
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.pid(name, vm).is_some() {
            if Instant::now() > deadline {
                let _ = kill(pid, Signal::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = fsutil::remove_if_exists(&vm.pidfile());
        Ok(())
    }

    fn shutdown(&self, name: &VmName, vm: &VmDir) -> Result<(), HvError> {
        if self.pid(name, vm).is_none() {
            return Ok(());
        }
        // The ACPI power button: the guest's systemd-logind powers it off.
        qmp::execute(&Self::qmp_socket(vm), "system_powerdown", None, self.timeout)
    }

    fn reboot(&self, name: &VmName, vm: &VmDir) -> Result<(), HvError> {
        if self.pid(name, vm).is_none() {
            return Ok(());
        }
        // Ctrl-Alt-Del on the guest's keyboard: the kernel hands it to
        // init, which reboots cleanly (a `system_reset` would be a reset
        // button, losing what the guest had not written).
        let keys = serde_json::json!({"keys": [
            {"type": "qcode", "data": "ctrl"},
            {"type": "qcode", "data": "alt"},
            {"type": "qcode", "data": "delete"}
        ]});
        qmp::execute(&Self::qmp_socket(vm), "send-key", Some(keys), self.timeout)
    }

    fn detach_seed(&self, d: &Domain, vm: &VmDir) -> Result<(), HvError> {
        // qemu never re-reads its config: a guest reboot stays in the same
        // process. The recorded command line, which `start` rewrites, is
        // what must not name the seed.
        self.prepare(d, vm).map(|_| ())
    }

    fn console_log(&self, _name: &VmName, vm: &VmDir) -> PathBuf {
        vm.console_log()
    }
}
