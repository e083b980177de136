//! A machine's life, in one place:
//!
//! ```text
//!  install ──► prepared ──► starting ──► installing ──► installed (running | stopped)
//!               │  (--no-start)  │              │ └────► failed
//!               │                │              └──────► cancelled (cancel)
//!               └─ expired ──────┴─ interrupted ───────► failed / cancelled
//! ```
//!
//! Every transition holds the machine's lock ([`Held`]) and observes the
//! guest (running? what did its console say?) only after taking it, so no
//! decision rests on a view another request may have changed. An install
//! that will start its guest is saved as `starting` before anything of it
//! is made, so a request killed mid-way leaves a record that the next one
//! (or the `settle` timer) settles. A clone is
//! wiped only when its identity never applied and its guest is confirmed
//! stopped: a guest someone may be using is never wiped on a guess.
//!
//! [`decide`] is the pure part (state + observation → what to do); the
//! rest carries it out.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hypervisor::{self, Domain, Hypervisor};
use crate::lock;
use crate::media::Media;
use crate::progress::{self, Stage};
use crate::registry::Machine;
use crate::sshkey::Fingerprint;
use crate::state::{self, Phase, VmDir, VmState};
use crate::template::{self, clone};
use std::path::Path;

mod rules;
pub use rules::{decide, Action, Observation};

/// A machine whose lock this request holds, with its files and driver.
pub struct Held<'a> {
    pub config: &'a Config,
    pub machine: &'a Machine,
    pub vmdir: VmDir,
    pub hv: Box<dyn Hypervisor>,
    _lock: lock::Lock,
}

/// Takes the machine's lock, `busy` at once if another request holds it,
/// and clears the hidden temporaries a killed request left.
pub fn hold<'a>(config: &'a Config, machine: &'a Machine) -> Result<Held<'a>> {
    let vmdir = VmDir::new(config, &machine.name);
    for d in [config.vms_dir(), config.locks_dir(), vmdir.dir.clone()] {
        fsutil::ensure_dir(&d, 0o700).map_err(|e| Error::failed(format!("cannot create {}: {e}", d.display())))?;
    }
    let held = lock::try_lock(&config.vm_lock(&machine.name))?;
    lock::remove_temporaries(&vmdir.dir, &[".build-", ".tmp-"])
        .map_err(|e| Error::failed(format!("cannot clear leftovers in {}: {e}", vmdir.dir.display())))?;
    let hv = hypervisor::for_config(config)?;
    Ok(Held { config, machine, vmdir, hv, _lock: held })
}

/// Like [`hold`], for a machine that has an install on record: `None`,
/// with nothing created (no lock file, no directory), if it has none, so
/// that a request about nothing changes nothing.
pub fn hold_recorded<'a>(config: &'a Config, machine: &'a Machine) -> Result<Option<Held<'a>>> {
    if VmDir::new(config, &machine.name).load()?.is_none() {
        return Ok(None);
    }
    hold(config, machine).map(Some)
}

impl Held<'_> {
    pub fn load(&self) -> Result<Option<VmState>> {
        Ok(self.vmdir.load()?)
    }

    fn console_path(&self) -> std::path::PathBuf {
        self.hv.console_log(&self.machine.name, &self.vmdir)
    }

    pub fn running(&self) -> Result<bool> {
        Ok(self.hv.is_running(&self.machine.name, &self.vmdir)?)
    }

    /// Looks at the guest of the install `st` records. Only a holder of
    /// the lock can call this. The console log (megabytes, perhaps) is read
    /// once, at the end the rules look at: a clone's identity line is near
    /// its start, an installer's stages near its end.
    pub fn observe(&self, st: &VmState) -> Result<Observation> {
        Ok(self.observe_with_host_key(st)?.0)
    }

    /// [`Held::observe`], and the SSH host key a clone's identity unit
    /// printed (read from the same head of its console).
    fn observe_with_host_key(&self, st: &VmState) -> Result<(Observation, Option<Fingerprint>)> {
        let console = self.console_path();
        // Whether it runs first: a guest that stops between the two reads
        // has printed everything we read after.
        let running = self.running()?;
        Ok(if st.template.is_some() {
            let head = crate::console::head(&console);
            let identity = head.as_deref().and_then(identity_outcome);
            (Observation { running, console: head.is_some(), identity, stage: None }, head.as_deref().and_then(template::host_key_of))
        } else {
            let tail = crate::console::tail(&console);
            (Observation { running, console: tail.is_some(), identity: None, stage: tail.as_deref().and_then(progress::stage_of) }, None)
        })
    }

    /// Records finished installs, removes media and seeds that are no
    /// longer needed (they hold the password hash), expires `--no-start`
    /// media. Returns the state after.
    pub fn settle(&self) -> Result<Option<VmState>> {
        let Some(mut st) = self.load()? else { return Ok(None) };
        // A finished install is decided without looking at its guest.
        let (obs, host_key) = if rules::observes(st.phase) { self.observe_with_host_key(&st)? } else { Default::default() };
        let mut action = decide(&st, &obs, state::now(), self.config.timeouts.prepared_media_s);
        if action == Action::Installing {
            st.phase = Phase::Installing;
            self.vmdir.save(&st)?;
            action = decide(&st, &obs, state::now(), self.config.timeouts.prepared_media_s);
        }
        match action {
            Action::Keep | Action::Installing => {
                // What a killed request made before putting itself on
                // record: a finished install keeps no media (they hold the
                // hash).
                if matches!(st.phase, Phase::Installed | Phase::Failed | Phase::Cancelled) {
                    self.remove_media()?;
                }
            }
            Action::Installed { reason } => {
                self.detach_seed(&st)?;
                self.remove_media()?;
                st.phase = Phase::Installed;
                st.reason = reason;
                st.finished_at = Some(state::now());
                // Seen under the lock, on the console of the boot that
                // applied the identity: kept for `status` after restarts.
                st.ssh_host_key = host_key;
                self.vmdir.save(&st)?;
            }
            Action::Failed { reason, wipe } => {
                self.stop_for_good()?;
                self.remove_media()?;
                if wipe {
                    self.discard_clone(&st)?;
                }
                st.phase = Phase::Failed;
                st.reason = Some(reason);
                st.finished_at = Some(state::now());
                self.vmdir.save(&st)?;
            }
            Action::Expired { after_s } => {
                self.remove_media()?;
                if st.template.is_some() {
                    self.discard_clone(&st)?;
                }
                st.phase = Phase::Cancelled;
                st.reason = Some(format!(
                    "the prepared media expired after {after_s} s unused (they hold the password hash); install again"
                ));
                st.finished_at = Some(state::now());
                self.vmdir.save(&st)?;
            }
        }
        Ok(Some(st))
    }

    /// `cancel`: settles first; an install that has finished is refused
    /// (exit 2) and left as it is.
    pub fn cancel(&self) -> Result<VmState> {
        let vm = &self.machine.name;
        let Some(mut st) = self.settle()? else {
            return Err(Error::invalid(format!("machine {vm} has no install to cancel")));
        };
        let finished = || Error::invalid(format!("the install of {vm} has finished; nothing to cancel (see `status {vm}`)"));
        if st.phase == Phase::Installed {
            return Err(finished());
        }
        if matches!(st.phase, Phase::Starting | Phase::Installing) {
            let obs = self.observe(&st)?;
            // An installer at its last step is about to power off by itself.
            if st.template.is_none() && obs.stage == Some(Stage::Finished) {
                return Err(finished());
            }
            self.stop_for_good()?;
            // The identity may have applied between the settle and the
            // stop: then the install finished, and the clone stays.
            if st.template.is_some() && self.observe(&st)?.identity == Some(true) {
                self.settle()?;
                return Err(Error::invalid(format!(
                    "the install of {vm} finished while it was being cancelled; it is installed and stopped \
                     (`start {vm}` runs it)"
                )));
            }
        }
        self.remove_media()?;
        if st.template.is_some() && st.phase != Phase::Failed {
            // A half-made (or never booted) clone goes with its install.
            self.discard_clone(&st)?;
        }
        if st.phase != Phase::Cancelled {
            st.phase = Phase::Cancelled;
            st.finished_at = Some(state::now());
            self.vmdir.save(&st)?;
        }
        Ok(st)
    }

    /// Puts an install that will start its guest on record as `starting`,
    /// before anything of it is made: a request killed at any later point
    /// leaves a record the next request settles. The old console is moved
    /// aside first, so a console seen later is this start's.
    pub fn begin_start(&self, mut st: VmState) -> Result<VmState> {
        let console = self.console_path();
        set_aside(&console)
            .map_err(|e| Error::failed(format!("cannot move the old console log {} aside: {e}", console.display())))?;
        st.phase = Phase::Starting;
        st.started_at = Some(state::now());
        self.vmdir.save(&st)?;
        Ok(st)
    }

    /// What making an install's media and config came to. On failure, an
    /// install on record as `starting` is recorded as failed, with why.
    pub fn unless_failed<T>(&self, made: Result<T>, st: &VmState, no_start: bool) -> Result<T> {
        made.inspect_err(|e| {
            if !no_start {
                let _ = self.record_failure(st.clone(), &e.message);
            }
        })
    }

    fn record_failure(&self, mut st: VmState, why: &str) -> Result<()> {
        st.phase = Phase::Failed;
        st.finished_at = Some(state::now());
        st.reason = Some(why.to_owned());
        Ok(self.vmdir.save(&st)?)
    }

    /// Starts the guest of an install on record as `starting`, and records
    /// `installing`. On failure `undo` removes what holds the password
    /// hash and the state says why.
    pub fn start_guest(&self, domain: &Domain, mut st: VmState, what: &str, undo: impl Fn()) -> Result<VmState> {
        if let Err(e) = self.hv.start(domain, &self.vmdir) {
            let err: Error = e.into();
            // xl may leave a half-made domain behind a failed create.
            let _ = self.hv.destroy(&self.machine.name, &self.vmdir);
            undo();
            self.record_failure(st, &err.message)?;
            return Err(Error::failed(format!("starting {what} for {} failed: {}", domain.name, err.message)));
        }
        st.phase = Phase::Installing;
        // A failure to record this is settled by the next request: the
        // `starting` record and a running guest become `installing`.
        self.vmdir.save(&st)?;
        Ok(st)
    }

    /// Refuses while the guest runs: whatever the recorded state says, a
    /// running guest is never replaced.
    pub fn require_stopped(&self) -> Result<()> {
        if self.running()? {
            let vm = &self.machine.name;
            return Err(Error::busy(format!("machine {vm} is running; stop it (or cancel its install) first")));
        }
        Ok(())
    }

    /// The machine must have a finished install and none running: what
    /// `start`, `stop` and `reboot` need. Settles first.
    pub fn require_installed(&self) -> Result<VmState> {
        let vm = &self.machine.name;
        match self.settle()? {
            Some(st) if st.phase == Phase::Installed => Ok(st),
            Some(st) if matches!(st.phase, Phase::Prepared | Phase::Starting | Phase::Installing) => Err(Error::busy(
                format!("machine {vm} has an install that has not finished ({}); wait for it or cancel it", st.phase.as_str()),
            )),
            _ => Err(nothing_installed(vm)),
        }
    }

    /// Stops the guest at once and confirms it has stopped.
    fn stop_for_good(&self) -> Result<()> {
        let vm = &self.machine.name;
        self.hv.destroy(vm, &self.vmdir)?;
        if self.running()? {
            return Err(Error::failed(format!("machine {vm} is still running after being destroyed; ask an admin")));
        }
        Ok(())
    }

    fn remove_media(&self) -> Result<()> {
        let vm = &self.machine.name;
        self.vmdir.remove_media().map_err(|e| Error::failed(format!("cannot remove the install media of {vm}: {e}")))
    }

    /// The identity applied: no config the guest restarts from may name
    /// the seed we are about to remove.
    fn detach_seed(&self, st: &VmState) -> Result<()> {
        if st.template.is_none() {
            return Ok(());
        }
        let media = run_media(self.machine, st);
        let domain = Domain::for_machine(self.machine, self.config, &media)?;
        Ok(self.hv.detach_seed(&domain, &self.vmdir)?)
    }

    /// Removes the clone `st` recorded (see [`Held::discard`]).
    pub fn discard_clone(&self, st: &VmState) -> Result<()> {
        let tpl = st.template.as_ref().and_then(|t| template::load(&self.config.templates_dir(), t).ok());
        self.discard(tpl.as_ref())
    }

    /// Removes a half-made clone: its seed (which holds the password
    /// hash), and the clone on the volume is wiped so that it neither
    /// mounts nor boots. `tpl` is the template an overlay was made from, if
    /// it is still there. Refused while the guest runs.
    pub fn discard(&self, tpl: Option<&template::Template>) -> Result<()> {
        let vm = &self.machine.name;
        if self.running()? {
            return Err(Error::failed(format!("machine {vm} still runs; its clone is not wiped")));
        }
        fsutil::remove_if_exists(&self.vmdir.identity_seed())
            .map_err(|e| Error::failed(format!("cannot remove the identity seed of {vm}: {e}")))?;
        clone::wipe(self.machine.disk()?, tpl.map(|t| t.root()).as_deref()).map_err(clone_error)
    }
}

pub fn nothing_installed(vm: &crate::types::VmName) -> Error {
    Error::invalid(format!("nothing is installed on machine {vm}; install it first"))
}

/// What an installed machine boots: its own disk (an installed system, or
/// a clone of a whole-disk template), or, for a clone of a bare-filesystem
/// template, the loader the host hands it.
pub fn run_media(m: &Machine, st: &VmState) -> Media {
    if st.template.is_some() && !st.whole_disk {
        Media::Loader
    } else {
        Media::Disk { pv: m.runs_pv() }
    }
}

pub fn clone_error(e: clone::CloneError) -> Error {
    use clone::CloneError as C;
    match e {
        C::InUse(_) => Error::busy(e.to_string()),
        _ => Error::failed(e.to_string()),
    }
}

/// What a clone's first-boot identity unit printed on its console.
pub fn identity_outcome(head: &str) -> Option<bool> {
    if head.contains(template::APPLIED_LINE) {
        Some(true)
    } else if head.contains(template::REFUSED_LINE) {
        Some(false)
    } else {
        None
    }
}

/// Moves a console log aside (to `NAME.old`), so that what is read after
/// a start is that start's.
fn set_aside(console: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(console) {
        Ok(_) => std::fs::rename(console, console.with_extension("log.old")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
