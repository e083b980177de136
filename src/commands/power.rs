//! `start`, `stop [--force]` and `reboot`: owners run their installed
//! machines, from their own disk and their own kernel (the boot loader
//! inside the guest picks it). Each takes the machine's lock first and
//! only then looks at the guest.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hypervisor::{self, Domain, Hypervisor};
use crate::lock;
use crate::media::Media;
use crate::registry::Machine;
use crate::state::{Phase, VmDir};
use crate::types::{Boot, VmName};
use serde_json::Value;
use std::time::{Duration, Instant};

/// An installed machine, locked, with its driver.
struct Held {
    machine: Machine,
    /// Cloned from a golden template (else installed by an installer).
    cloned: bool,
    vmdir: VmDir,
    hv: Box<dyn Hypervisor>,
    _lock: lock::Lock,
}

/// Caller, policy, lock, then the recorded state: only a machine whose
/// install has finished is run; one whose install runs is busy.
fn hold(ctx: &Ctx, vm: &VmName) -> Result<Held> {
    let machine = ctx.managed_machine(vm)?;
    let config = ctx.config;
    let vmdir = VmDir::new(config, vm);
    for d in [config.vms_dir(), config.locks_dir(), vmdir.dir.clone()] {
        fsutil::ensure_dir(&d, 0o700).map_err(|e| Error::failed(format!("cannot create {}: {e}", d.display())))?;
    }
    let held = lock::try_lock(&config.vm_lock(vm))?;
    let st = vmdir.load()?;
    match st.as_ref().map(|s| s.phase) {
        Some(Phase::Installed) => {}
        Some(Phase::Installing) => {
            return Err(Error::busy(format!("machine {vm} is being installed; wait until `status {vm}` says installed, or cancel it")))
        }
        _ => return Err(Error::invalid(format!("nothing is installed on machine {vm}; install it first"))),
    }
    let cloned = st.is_some_and(|s| s.template.is_some());
    Ok(Held { machine, cloned, vmdir, hv: hypervisor::for_config(config)?, _lock: held })
}

/// What an installed machine boots: a clone, the boot loader inside it;
/// an installed system, its own disk.
fn run_media(m: &Machine, was_cloned: bool) -> Media {
    if was_cloned {
        Media::Loader
    } else {
        Media::Disk { pv: m.boot == Boot::PvInitrd }
    }
}

fn outcome(h: &Held, action: &str, running: bool, human: String, extra: &[(&str, Value)]) -> Outcome {
    let mut json = obj([
        ("vm", Value::from(h.machine.name.as_str())),
        ("action", Value::from(action)),
        ("state", Value::from(Phase::Installed.as_str())),
        ("running", Value::from(running)),
    ]);
    json.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Outcome { human, json }
}

pub fn start(ctx: &Ctx, vm: &VmName) -> Result<Outcome> {
    let h = hold(ctx, vm)?;
    if h.hv.is_running(vm, &h.vmdir)? {
        return Err(Error::busy(format!("machine {vm} is already running")));
    }
    let media = run_media(&h.machine, h.cloned);
    let domain = Domain::for_machine(&h.machine, ctx.config, &media);
    let cfg = h.hv.prepare(&domain, &h.vmdir)?;
    h.hv.start(&domain, &h.vmdir).map_err(|e| Error::failed(format!("starting {vm} failed: {e}")))?;
    let console = h.hv.console_log(vm, &h.vmdir);
    let human = format!("{vm}: started\n  domain config: {}\n  console log: {}\n", cfg.display(), console.display());
    Ok(outcome(&h, "start", true, human, &[
        ("domain_config", Value::from(cfg.display().to_string())),
        ("console_log", Value::from(console.display().to_string())),
    ]))
}

/// A clean shutdown, waited for up to `[timeouts] stop_s`; with `force`,
/// a guest still running then is destroyed.
pub fn stop(ctx: &Ctx, vm: &VmName, force: bool) -> Result<Outcome> {
    let h = hold(ctx, vm)?;
    if !h.hv.is_running(vm, &h.vmdir)? {
        return Ok(outcome(&h, "stop", false, format!("{vm}: not running\n"), &[("forced", Value::from(false))]));
    }
    let limit = ctx.config.timeouts.stop();
    let forced = |why: String| -> Result<Outcome> {
        h.hv.destroy(vm, &h.vmdir)?;
        Ok(outcome(&h, "stop", false, format!("{vm}: destroyed ({why})\n"), &[("forced", Value::from(true))]))
    };
    if let Err(e) = h.hv.shutdown(vm, &h.vmdir) {
        // A request that cannot reach the guest is not worth waiting for.
        return if force { forced(format!("the shutdown request failed: {e}")) } else { Err(e.into()) };
    }
    let deadline = Instant::now() + limit;
    while h.hv.is_running(vm, &h.vmdir)? {
        if Instant::now() >= deadline {
            if !force {
                return Err(Error::failed(format!(
                    "machine {vm} did not shut down within {} s; `stop {vm} --force` stops it at once after that time",
                    limit.as_secs()
                )));
            }
            return forced(format!("no clean shutdown within {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(outcome(&h, "stop", false, format!("{vm}: shut down\n"), &[("forced", Value::from(false))]))
}

/// Asks the guest to reboot itself; it comes back through its boot loader.
pub fn reboot(ctx: &Ctx, vm: &VmName) -> Result<Outcome> {
    let h = hold(ctx, vm)?;
    if !h.hv.is_running(vm, &h.vmdir)? {
        return Err(Error::invalid(format!("machine {vm} is not running; `start {vm}` starts it")));
    }
    h.hv.reboot(vm, &h.vmdir)?;
    Ok(outcome(&h, "reboot", true, format!("{vm}: reboot requested\n"), &[]))
}
