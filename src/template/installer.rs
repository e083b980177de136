//! The second builder: "the installer itself". Our own preseeded install
//! runs in a registered build machine (its network, MAC, volume, memory,
//! vcpus and boot route) with the configured hypervisor driver, exactly as
//! `install VM` would run it; when the guest has stopped with the
//! installer finished, its root filesystem is read back from the volume
//! without mounting anything (partition table → first ext4 partition →
//! [`readback`], an in-process reader that cannot be steered into writing
//! outside the tree), and the shared finish step seals it.
//!
//! The root password of the build install is random and never shown: the
//! seal locks root anyway. The per-VM media (which hold its hash) are
//! removed whatever happens. The machine's lock is held for the whole
//! build, so no `install VM` can race it; its state file is not touched
//! (the build is not an install of that machine).
//!
//! Which partition is root: the first ext4 partition in the table's order
//! (primary 1–4, then logical 5…, or GPT order), which is where every d-i
//! partman-auto recipe puts `/`. It must hold /etc/os-release, or the build
//! fails (a separate /boot first, or LVM, is not supported).

use super::{partition, readback, Builder, BuilderKind, TemplateError, TemplateName};
use crate::config::Config;
use crate::hypervisor::{Domain, Hypervisor};
use crate::image::Image;
use crate::lifecycle::{self, Held};
use crate::media;
use crate::guest::Guest;
use crate::preseed::{self, PreseedTemplate};
use crate::progress::{self, Stage};
use crate::registry::Machine;
use crate::secret::CryptHash;
use crate::state::VmDir;
use crate::steps::Steps;
use crate::types::Hostname;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the guest is checked while the install runs.
const POLL: Duration = Duration::from_millis(500);
/// How often its console is read for the install's stage (a read of up to
/// `console::READ_BYTES`).
const STAGE_EVERY: Duration = Duration::from_secs(5);
/// Used when the template's name is not a valid host name.
const FALLBACK_HOSTNAME: &str = "template";

pub struct Installer<'a> {
    image: &'a Image,
    hostname: Hostname,
    /// The build machine, locked for the whole build.
    held: Held<'a>,
    /// The build machine's volume.
    disk: &'a crate::types::DiskPath,
}

fn failed(what: &str, e: impl std::fmt::Display) -> TemplateError {
    TemplateError::Install(format!("{what}: {e}"))
}

impl<'a> Installer<'a> {
    /// Claims the build machine as `install` claims a machine: its volume
    /// is checked before anything is written, then its lock is taken
    /// (busy at once if another request holds it) and its guest must not
    /// be running.
    pub fn claim(config: &'a Config, machine: &'a Machine, image: &'a Image, name: &TemplateName) -> crate::error::Result<Self> {
        use crate::error::Error;
        use crate::volume::{self, Kind};
        let disk = machine.disk()?;
        match volume::kind(disk) {
            Ok(Kind::BlockDevice | Kind::RawFile) => {}
            // The volume is read back as a raw disk (partition table first).
            Ok(Kind::Qcow2File) => {
                return Err(Error::failed(format!(
                    "the volume {} of the build machine {} is a qcow2 image; a build machine needs a raw volume (a file or a block device)",
                    disk, machine.name
                )))
            }
            Err(_) => {
                return Err(Error::failed(format!(
                    "the volume {} of the build machine {} is missing or not a block device or file",
                    disk, machine.name
                )))
            }
        }
        let held = lifecycle::hold(config, machine)?;
        held.require_stopped()?;
        let hostname = Hostname::parse(name.as_str())
            .unwrap_or_else(|_| Hostname::parse(FALLBACK_HOSTNAME).expect("the fallback is a host name"));
        Ok(Installer { image, hostname, held, disk })
    }

    /// Runs the install to its end, reporting its stages to `steps`. The
    /// media are removed (and the guest stopped) whatever happens.
    fn install(&self, steps: &Steps) -> Result<(), TemplateError> {
        let config = self.held.config;
        let preseed_template = PreseedTemplate::read(config.preseed_template.path()).map_err(|e| TemplateError::Install(e.to_string()))?;
        let root_hash = CryptHash::random().map_err(|e| failed("cannot make a random root password", e))?;
        // No key and no sshd drop-in: the seal locks root again anyway.
        let root = crate::rootlogin::RootLogin::console_only(root_hash);
        let guest = Guest::of_machine(config, self.held.machine, &self.hostname, &root);
        let text = preseed_template.render(&preseed::Values { guest: &guest, mirror: &config.mirror });
        let guard = Running { hv: self.held.hv.as_ref(), machine: self.held.machine, vmdir: &self.held.vmdir, done: false };
        steps.step(&format!("writing the install media for the build machine {}", self.held.machine.name));
        let media = media::build(self.held.machine.boot, self.image, &text, &self.held.vmdir).map_err(|e| failed("media", e))?;
        drop(text);
        let domain = Domain::for_machine(self.held.machine, config, &media).map_err(|e| failed("the build machine", e))?;
        self.held.hv.prepare(&domain, &self.held.vmdir).map_err(|e| failed("hypervisor", e))?;
        steps.step(&format!("starting the installer guest {}", self.held.machine.name));
        self.held.hv.start(&domain, &self.held.vmdir).map_err(|e| failed("starting the installer guest", e))?;

        let limit = config.timeouts.template();
        steps.step(&format!("waiting for the install to finish (at most {} s)", limit.as_secs()));
        let deadline = Instant::now() + limit;
        let mut watch = Watch::default();
        while self.held.hv.is_running(&self.held.machine.name, &self.held.vmdir).map_err(|e| failed("hypervisor", e))? {
            watch.look(&self.console(), steps);
            if Instant::now() > deadline {
                let last = self.last_stage();
                guard.close()?;
                return Err(TemplateError::Install(format!(
                    "the installer guest did not stop within {} s and was destroyed (last stage: {last})",
                    limit.as_secs()
                )));
            }
            std::thread::sleep(POLL);
        }
        watch.last = None;
        watch.look(&self.console(), steps);
        guard.close()?;
        steps.step("the installer guest has stopped");
        match progress::stage(&self.console()) {
            Some(Stage::Finished) => Ok(()),
            _ => Err(TemplateError::Install(format!(
                "the installer guest stopped before the install finished (last stage: {}); see {}",
                self.last_stage(),
                self.console().display()
            ))),
        }
    }

    fn console(&self) -> std::path::PathBuf {
        self.held.hv.console_log(&self.held.machine.name, &self.held.vmdir)
    }

    fn last_stage(&self) -> &'static str {
        progress::stage(&self.console()).map_or("none seen on the console", Stage::as_str)
    }

    /// Reads the root partition of the installed disk into `tree`.
    fn read_root(&self, tree: &Path) -> Result<u32, TemplateError> {
        let disk = self.disk.as_str();
        let bad = |message: String| TemplateError::Disk { disk: disk.to_owned(), message };
        let mut f = std::fs::File::open(disk).map_err(|e| bad(e.to_string()))?;
        let parts = partition::partitions(&mut f).map_err(|e| bad(e.to_string()))?;
        for p in &parts {
            if partition::is_ext4(&mut f, p).map_err(|e| bad(e.to_string()))? {
                let src = readback::ext4::Region { file: f, start: p.start, len: p.len };
                readback::extract(Box::new(src), tree, readback::Budget::default())?;
                return Ok(p.number);
            }
        }
        Err(bad(format!("none of its {} partitions holds an ext4 filesystem", parts.len())))
    }
}

impl Builder for Installer<'_> {
    fn kind(&self) -> BuilderKind {
        BuilderKind::Installer
    }

    fn make_tree(&self, tree: &Path, steps: &Steps) -> Result<(), TemplateError> {
        self.install(steps)?;
        steps.step(&format!("reading the installed system back from {}", self.disk));
        let number = self.read_root(tree)?;
        if std::fs::symlink_metadata(tree.join("etc/os-release")).is_err() {
            return Err(TemplateError::Disk {
                disk: self.disk.as_str().to_owned(),
                message: format!(
                    "its first ext4 partition ({number}) holds no /etc/os-release, so it is not the root filesystem \
                     (a separate /boot before it, or LVM, is not supported)"
                ),
            });
        }
        Ok(())
    }
}

/// What of the install's console has been reported: each new stage, and
/// each dialog the installer stops at (its title cleaned: the guest wrote it).
#[derive(Default)]
struct Watch {
    stage: Option<Stage>,
    dialog: Option<String>,
    last: Option<Instant>,
}

impl Watch {
    fn look(&mut self, console: &Path, steps: &Steps) {
        if self.last.is_some_and(|t| t.elapsed() < STAGE_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let Some(text) = crate::console::tail(console) else { return };
        // Only forward: the tail read may have lost an earlier stage's marker.
        if let Some(s) = progress::stage_of(&text).filter(|s| Some(*s) > self.stage) {
            steps.step(&format!("install stage: {}", s.as_str()));
            self.stage = Some(s);
        }
        let dialog = progress::dialog_of(&text).map(|d| crate::console::clean_line(&d));
        if dialog.is_some() && dialog != self.dialog {
            steps.step(&format!("the installer shows a dialog: {}", dialog.as_deref().unwrap_or_default()));
        }
        self.dialog = dialog;
    }
}

/// The installer guest and its media: on every way out, the guest is
/// stopped and the media (which hold the password hash) removed.
struct Running<'a> {
    hv: &'a dyn Hypervisor,
    machine: &'a Machine,
    vmdir: &'a VmDir,
    done: bool,
}

impl Running<'_> {
    fn stop(&self) -> Result<(), TemplateError> {
        self.hv.destroy(&self.machine.name, self.vmdir).map_err(|e| failed("stopping the installer guest", e))?;
        self.vmdir.remove_media().map_err(|e| failed("removing the install media", e))
    }

    fn close(mut self) -> Result<(), TemplateError> {
        self.done = true;
        self.stop()
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_new_stage_and_dialog_of_the_console_is_reported_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("console.log");
        let steps = Steps::kept();
        let mut w = Watch::default();
        let mut look = |text: &str| {
            std::fs::write(&log, text).unwrap();
            w.last = None;
            w.look(&log, &steps);
        };
        look("Linux version 6.1\n");
        look("Linux version 6.1\nDetecting network hardware\n");
        look("Linux version 6.1\nSetting up the clock\n\x1b[1;1H\x1b(0lqq\x1b(B [!!] Configure \x1b[31mthe network\x1b[0m\n");
        // The tail lost the earlier markers: no stage goes back.
        look("Installing the base system\n");
        look("Installing the base system\n");
        let texts: Vec<String> = steps.lines().iter().map(|l| l.split("] ").nth(1).unwrap().to_owned()).collect();
        assert_eq!(
            texts,
            ["install stage: booted", "install stage: network configured", "the installer shows a dialog: Configure", "install stage: installing base system"]
        );
    }
}
