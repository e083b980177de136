//! The qemu driver, for KVM hosts and for every machine without Xen (the
//! demo, the boot tests): the same media and disk as the xl driver, the
//! serial console logged to the VM's directory, `-no-reboot` as the
//! counterpart of xl's `on_reboot="destroy"`, KVM when it works and TCG
//! otherwise. qemu runs as an unprivileged user in its seccomp sandbox,
//! started by a supervisor that hands it its files and caps its console
//! log (`supervisor`).

pub mod conlog;
pub mod conserve;
mod files;
pub mod supervisor;
mod tap;
pub mod uids;

use super::{grub::GrubPc, qmp, Domain, HvError, Hypervisor};
use crate::config::{Config, QemuNet, QemuUids, UserName};
use crate::fsutil;
use crate::media::{self, Media};
use crate::state::VmDir;
use crate::types::VmName;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use supervisor::{FD_BACKING, FD_CONTROL, FD_DISK, FD_DISK_RO, FD_INITRD, FD_KERNEL, FD_MEDIA, FD_QMP, FD_SERIAL, FD_TAP};
use crate::fsutil::io_err;

pub struct Qemu {
    program: PathBuf,
    net: QemuNet,
    bridge: String,
    timeout: Duration,
    grub: GrubPc,
    /// The only place a volume's backing file may be (see `files::plan`).
    templates: PathBuf,
    user: UserName,
    uids: QemuUids,
    /// Where every VM's directory is (to see which uids running guests have).
    vms_dir: PathBuf,
    uid_lock: PathBuf,
    log_max: u64,
    /// The program that is the supervisor: this very program, unless a
    /// caller of the library (a test) names the guest-installer binary.
    supervisor: Option<PathBuf>,
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
            templates: config.templates_dir(),
            user: config.hypervisor.qemu_user.clone(),
            uids: config.hypervisor.qemu_uids,
            vms_dir: config.vms_dir(),
            uid_lock: config.locks_dir().join("qemu-uids.lock"),
            log_max: config.hypervisor.console_log_max_mib.bytes(),
            supervisor: None,
        }
    }

    /// Starts qemu's supervisor from `program` (the guest-installer
    /// binary) instead of from this process's own executable: for code
    /// that drives the library from another program.
    pub fn with_supervisor(mut self, program: PathBuf) -> Self {
        self.supervisor = Some(program);
        self
    }

    /// qemu's control socket, for clean shutdowns and reboots.
    pub fn qmp_socket(vm: &VmDir) -> PathBuf {
        vm.dir.join("qmp.sock")
    }

    /// The supervisor's console socket, for the console door (root's, in
    /// root's directory: only `console-serve` reaches it).
    pub fn console_socket(vm: &VmDir) -> PathBuf {
        vm.dir.join("console.sock")
    }

    /// Makes sure what `args` names exists: the GRUB image, for the bare-
    /// filesystem clones that boot through it (made only when one starts).
    fn ensure_loader(&self, d: &Domain) -> Result<(), HvError> {
        if matches!(d.media, Media::Loader) {
            self.grub.image()?;
        }
        Ok(())
    }

    /// The whole command line, for the descriptors `plan` lists (see
    /// `files::plan`). Values are validated types and config paths of a
    /// safe character set; commas (qemu's option separator) cannot occur
    /// in any of them.
    pub fn args(&self, d: &Domain, plan: &[files::Slot]) -> Vec<OsString> {
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
        // Files come as descriptors at fixed numbers (see `supervisor`):
        // qemu runs as a user who cannot open anything of ours by name.
        push("-sandbox".into());
        push("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny".into());
        push("-chardev".into());
        push(format!("socket,id=gi-serial,fd={FD_SERIAL}"));
        push("-serial".into());
        push("chardev:gi-serial".into());
        // The supervisor's own monitor: it waits on it for qemu to be up.
        push("-chardev".into());
        push(format!("socket,id=gi-qmp,fd={FD_QMP}"));
        push("-mon".into());
        push("chardev=gi-qmp,mode=control".into());
        // The control socket for later requests (stop, reboot): we bind it
        // (root's, in root's directory) and qemu listens on the descriptor.
        push("-chardev".into());
        push(format!("socket,id=gi-control,fd={FD_CONTROL},server=on,wait=off"));
        push("-mon".into());
        push("chardev=gi-control,mode=control".into());
        if d.media.is_installer() {
            // The installer's reboot at the end is how we see it finished.
            push("-no-reboot".into());
        }
        // qemu opens a disk read-only first, then for writing: a set of both.
        push("-add-fd".into());
        push(format!("fd={FD_DISK},set={FD_DISK},opaque={}", d.disk));
        push("-add-fd".into());
        push(format!("fd={FD_DISK_RO},set={FD_DISK},opaque={}", d.disk));
        // A qcow2 volume over a template image: that one as a descriptor too.
        let backing = match plan.iter().find(|(slot, _, _)| *slot == supervisor::FD_DISK_BACKING) {
            Some((fd, b, _)) => {
                push("-add-fd".into());
                push(format!("fd={fd},set={fd},opaque={}", b.display()));
                format!(",backing.driver=raw,backing.file.filename=/dev/fdset/{fd}")
            }
            None => String::new(),
        };
        push("-drive".into());
        push(format!("file=/dev/fdset/{FD_DISK},format={},if=virtio{backing}", d.disk.format().as_str()));
        match d.media {
            // The boot code in the clone's disk, which boots what the
            // guest's own grub.cfg names; the seed as a second disk.
            Media::Clone { seed, .. } => {
                push("-add-fd".into());
                push(format!("fd={FD_MEDIA},set={FD_MEDIA},opaque={}", seed.display()));
                push("-drive".into());
                push(format!("file=/dev/fdset/{FD_MEDIA},format=raw,if=virtio,readonly=on"));
                push("-boot".into());
                push("c".into());
            }
            // A bare-filesystem clone: GRUB from the host.
            Media::Loader => {
                push("-kernel".into());
                push(format!("/proc/self/fd/{FD_KERNEL}"));
            }
            Media::Disk { .. } => {
                push("-boot".into());
                push("c".into());
            }
            Media::Cdrom(iso) => {
                // An overlay of the image's ISO: its backing file comes as
                // a descriptor too (qemu would open the name in its header).
                push("-add-fd".into());
                push(format!("fd={FD_MEDIA},set={FD_MEDIA},opaque={}", iso.display()));
                push("-add-fd".into());
                push(format!("fd={FD_BACKING},set={FD_BACKING}"));
                push("-drive".into());
                push(format!(
                    "file=/dev/fdset/{FD_MEDIA},format=qcow2,media=cdrom,readonly=on,\
                     backing.driver=raw,backing.file.filename=/dev/fdset/{FD_BACKING}"
                ));
                push("-boot".into());
                push("d".into());
            }
            // `-kernel` and `-initrd` take names, not descriptors: qemu
            // reads our in-memory copies through its own /proc/self/fd.
            Media::Kernel { .. } => {
                push("-kernel".into());
                push(format!("/proc/self/fd/{FD_KERNEL}"));
                push("-initrd".into());
                push(format!("/proc/self/fd/{FD_INITRD}"));
                push("-append".into());
                push(format!("{} console=ttyS0,115200n8", media::INSTALLER_ARGS));
            }
        }
        push("-nic".into());
        push(match self.net {
            // No way out of the guest: for tests and demos.
            QemuNet::User => format!("user,model=virtio-net-pci,mac={},restrict=on", d.mac),
            // A tap we plugged into the bridge (see `tap`).
            QemuNet::Bridge => format!("tap,fd={FD_TAP},model=virtio-net-pci,mac={}", d.mac),
        });
        a
    }

    /// The files qemu is given as descriptors (see `files::plan`).
    fn plan(&self, d: &Domain) -> Result<Vec<files::Slot>, HvError> {
        files::plan(d, &self.grub.path(), &self.templates).map_err(|e| HvError::Start(format!("cannot read the media of {}: {e}", d.name)))
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
        let plan = self.plan(d)?;
        for a in self.args(d, &plan) {
            text.push_str(&a.to_string_lossy());
            text.push('\n');
        }
        text.push_str(&format!("# run as a uid of its own (hypervisor.qemu_uids) with the groups of {}; descriptors it is given:\n", self.user.as_str()));
        for (slot, file, _) in plan {
            text.push_str(&format!("# {slot}: {}\n", file.display()));
        }
        fsutil::write_atomic(&path, text.as_bytes(), 0o600).map_err(io_err(&path))?;
        Ok(path)
    }

    fn start(&self, d: &Domain, vm: &VmDir) -> Result<(), HvError> {
        self.ensure_loader(d)?;
        for p in [vm.console_log(), vm.pidfile(), Self::qmp_socket(vm), Self::console_socket(vm)] {
            fsutil::remove_if_exists(&p).map_err(io_err(&p))?;
        }
        let user = nix::unistd::User::from_name(self.user.as_str())
            .ok()
            .flatten()
            .filter(|u| !u.uid.is_root())
            .ok_or_else(|| {
                HvError::Start(format!(
                    "the user {} that qemu runs as (hypervisor.qemu_user) does not exist or is root; \
                     create a system user for it (adduser --system --group {})",
                    self.user.as_str(),
                    self.user.as_str()
                ))
            })?;
        let name = std::ffi::CString::new(user.name.clone()).expect("a user name has no NUL");
        let groups = nix::unistd::getgrouplist(&name, user.gid).unwrap_or_else(|_| vec![user.gid]);
        let plan = self.plan(d)?;
        let mut fds =
            files::open(&plan).map_err(|(path, e)| HvError::Start(format!("cannot open {} for qemu: {e}", path.display())))?;
        if self.net == QemuNet::Bridge {
            let t = tap::open(&self.bridge, d.mac.octets()).map_err(|e| {
                HvError::Start(format!(
                    "{e} (the config's hypervisor.bridge, for qemu_net = \"bridge\"): create the bridge, or name an existing one"
                ))
            })?;
            fds.push((FD_TAP, t));
        }
        let program = match &self.supervisor {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| HvError::Start(format!("cannot find our own program: {e}")))?,
        };
        // Last, so that nothing fails between binding it and handing it over.
        let control = Self::qmp_socket(vm);
        let listener = std::os::unix::net::UnixListener::bind(&control)
            .map_err(io_err(&control))?;
        fds.push((FD_CONTROL, listener.into()));
        let slots: Vec<_> = fds.iter().map(|(s, _)| *s).collect();
        // Not among qemu's slots: the supervisor's own (it keeps it from qemu).
        let console = Self::console_socket(vm);
        let console_listener = std::os::unix::net::UnixListener::bind(&console).map_err(|e| {
            let _ = fsutil::remove_if_exists(&control);
            io_err(&console)(e)
        })?;
        fds.push((supervisor::FD_CONSOLE, console_listener.into()));
        // A uid of its own (see `uids`): a start may take up to the launch's
        // time limit.
        let uid = uids::allocate(self.uids, &self.vms_dir, &self.uid_lock, vm, self.timeout + Duration::from_secs(5)).map_err(|e| {
            let _ = fsutil::remove_if_exists(&control);
            let _ = fsutil::remove_if_exists(&console);
            HvError::Start(format!("cannot choose a uid for qemu: {e}"))
        })?;
        let spec = supervisor::Spec {
            program: self.program.clone(),
            args: self.args(d, &plan).into_iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            uid,
            gid: user.gid.as_raw(),
            groups: groups.iter().map(|g| g.as_raw()).collect(),
            console_log: vm.console_log(),
            log_max: self.log_max,
            pidfile: vm.pidfile(),
            control_socket: control.clone(),
            console_socket: console.clone(),
            slots,
        };
        supervisor::launch(&program, &spec, fds, self.timeout).map_err(|e| {
            let _ = fsutil::remove_if_exists(&control);
            let _ = fsutil::remove_if_exists(&console);
            let _ = fsutil::remove_if_exists(&vm.dir.join(uids::UID_FILE));
            HvError::Start(e)
        })
    }

    fn is_running(&self, name: &VmName, vm: &VmDir) -> Result<bool, HvError> {
        // The supervisor holds the pidfile locked until the console log is
        // complete: a guest that just stopped is still running till then.
        Ok(self.pid(name, vm).is_some() || supervisor::supervising(&vm.pidfile()))
    }

    fn destroy(&self, name: &VmName, vm: &VmDir) -> Result<(), HvError> {
        use nix::sys::signal::{kill, Signal};
        if let Some(pid) = self.pid(name, vm) {
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.pid(name, vm).is_some() {
                if Instant::now() > deadline {
                    let _ = kill(pid, Signal::SIGKILL);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Then the supervisor writes the last of the console and exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while supervisor::supervising(&vm.pidfile()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if supervisor::supervising(&vm.pidfile()) {
            // Still finishing: its files stay, and the guest counts as
            // running until it is done, so that no new run of the guest
            // starts beside it (the supervisor removes them itself).
            return Err(HvError::Start(format!(
                "qemu of {name} was stopped, but its supervisor has not finished its console log yet; try again in a moment"
            )));
        }
        let _ = fsutil::remove_if_exists(&Self::qmp_socket(vm));
        let _ = fsutil::remove_if_exists(&Self::console_socket(vm));
        let _ = fsutil::remove_if_exists(&vm.pidfile());
        let _ = fsutil::remove_if_exists(&vm.dir.join(uids::UID_FILE));
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

    /// The supervisor's console socket: it closes the connection when
    /// qemu is gone, so the session ends when the guest stops.
    fn attach_console(&self, name: &VmName, vm: &VmDir) -> Result<super::attach::Attached, HvError> {
        let path = Self::console_socket(vm);
        let s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
            HvError::Console(format!("the console of {name} cannot be reached at {} ({e}); it is served only by guests started since the console door was installed: stop and start it", path.display()))
        })?;
        Ok(super::attach::Attached::socket(s))
    }
}
