//! `start`, `stop [--force]` and `reboot`: owners run their installed
//! machines, from their own disk and their own kernel (the boot loader
//! inside the guest picks it). Each takes the machine's lock first and
//! only then looks at the guest.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::hypervisor::Domain;
use crate::lifecycle::{self, nothing_installed, Held};
use crate::registry::Machine;
use crate::state::{Phase, VmState};
use crate::types::VmName;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Caller and policy, then the machine's lock; settled under it, only a
/// machine whose install has finished is run (one whose install is
/// pending is busy).
fn hold<'a>(ctx: &'a Ctx, machine: &'a Machine) -> Result<(Held<'a>, VmState)> {
    let held = lifecycle::hold_recorded(ctx.config, machine)?.ok_or_else(|| nothing_installed(&machine.name))?;
    let st = held.require_installed()?;
    Ok((held, st))
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
    let machine = ctx.managed_machine(vm)?;
    let (h, st) = hold(ctx, &machine)?;
    if h.running()? {
        return Err(Error::busy(format!("machine {vm} is already running")));
    }
    let media = lifecycle::run_media(&machine, &st);
    let domain = Domain::for_machine(&machine, ctx.config, &media)?;
    let cfg = h.hv.prepare(&domain, &h.vmdir)?;
    h.hv.start(&domain, &h.vmdir).map_err(|e| Error::failed(format!("starting {vm} failed: {e}")))?;
    let mut o = outcome(&h, "start", true, format!("{vm}: started\n"), &[]);
    if ctx.shows_host_paths() {
        let paths = [("domain_config", cfg), ("console_log", h.hv.console_log(vm, &h.vmdir))];
        super::install::host_path_lines(&mut o.human, &mut o.json, &paths);
    }
    Ok(o)
}

/// A clean shutdown, waited for up to `[timeouts] stop_s`; with `force`,
/// a guest still running then is destroyed.
pub fn stop(ctx: &Ctx, vm: &VmName, force: bool) -> Result<Outcome> {
    let machine = ctx.managed_machine(vm)?;
    let (h, _) = hold(ctx, &machine)?;
    if !h.running()? {
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
    while h.running()? {
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
    let machine = ctx.managed_machine(vm)?;
    let (h, _) = hold(ctx, &machine)?;
    if !h.running()? {
        return Err(Error::invalid(format!("machine {vm} is not running; `start {vm}` starts it")));
    }
    h.hv.reboot(vm, &h.vmdir)?;
    Ok(outcome(&h, "reboot", true, format!("{vm}: reboot requested\n"), &[]))
}
