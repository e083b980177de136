//! `status`, `cancel` and `list`: what an owner sees of their machines.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::hypervisor::{self, Hypervisor};
use crate::lock;
use crate::policy::{self, Decision};
use crate::state::{self, Phase, VmDir, VmState};
use crate::registry::Machine;
use crate::template;
use crate::types::VmName;
use crate::fsutil;
use crate::progress;
use serde_json::Value;

/// If the installer guest has stopped, the install is over: record how it
/// ended and remove the media (it holds the password hash). Done under the
/// lock, and skipped if another request holds it. The installer prints its
/// last stage on the console before the guest reboots (or powers off); a
/// console that shows an installer which never got there means it died.
fn settle(ctx: &Ctx, hv: &dyn Hypervisor, machine: &Machine, vmdir: &VmDir, st: VmState) -> Result<VmState> {
    let vm = &machine.name;
    if st.phase == Phase::Installing && st.template.is_some() {
        return settle_clone(ctx, hv, machine, vmdir, st);
    }
    if st.phase != Phase::Installing || hv.is_running(vm, vmdir)? {
        return Ok(st);
    }
    let Ok(_lock) = lock::try_lock(&ctx.config.vm_lock(vm)) else {
        return Ok(st);
    };
    let Some(mut st) = vmdir.load()? else { return Ok(st) };
    if st.phase == Phase::Installing {
        match progress::stage(&hv.console_log(vm, vmdir)) {
            // No console log (xl without XENCONSOLED_TRACE): the guest
            // went away on its own, as the installer makes it at the end.
            None | Some(progress::Stage::Finished) => st.phase = Phase::Installed,
            Some(stage) => {
                st.phase = Phase::Failed;
                st.reason = Some(format!(
                    "the installer guest stopped before the install finished (last stage: {}); see the console log",
                    stage.as_str()
                ));
            }
        }
        st.finished_at = Some(state::now());
        vmdir.remove_media().map_err(|e| Error::failed(format!("cannot remove the install media of {vm}: {e}")))?;
        vmdir.save(&st)?;
    }
    Ok(st)
}

/// The start of a clone's console, where its identity unit prints (early
/// in the first boot): bounded, whatever the guest wrote after.
fn console_head(console: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut text = Vec::new();
    fsutil::open_nofollow(console).ok()?.take(8 << 20).read_to_end(&mut text).ok()?;
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// What the clone's first-boot identity unit printed, from the console.
fn identity_outcome(console: &std::path::Path) -> Option<bool> {
    let text = console_head(console)?;
    if text.contains(crate::template::APPLIED_LINE) {
        Some(true)
    } else if text.contains(crate::template::REFUSED_LINE) {
        Some(false)
    } else {
        None
    }
}

/// The SSH host key fingerprint the clone's identity unit printed (the
/// first one: it comes before any login is possible), for the owner's
/// known_hosts.
fn ssh_host_key(console: &std::path::Path) -> Option<String> {
    let text = console_head(console)?;
    let at = text.find("gi-identity: ssh-host-key=SHA256:")? + "gi-identity: ssh-host-key=".len();
    let fp: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || "+/=:".contains(*c)).take(64).collect();
    (fp.len() > "SHA256:".len()).then_some(fp)
}

/// A clone is `installed` once its console shows that the identity seed
/// was applied (the seed, which holds the password hash, is then
/// removed); `failed` if the guest refused the seed or stopped before
/// applying it (the clone is then discarded). With no console log at all
/// (xl without xenconsoled's guest logging) nothing can be known: a
/// stopped clone is then `installed` with a reason saying so, and its
/// volume is left alone, for a guest its owner used and shut down must
/// never be wiped on a guess.
fn settle_clone(ctx: &Ctx, hv: &dyn Hypervisor, machine: &Machine, vmdir: &VmDir, st: VmState) -> Result<VmState> {
    let vm = &machine.name;
    let console = hv.console_log(vm, vmdir);
    let outcome = identity_outcome(&console);
    let running = hv.is_running(vm, vmdir)?;
    if outcome.is_none() && running {
        return Ok(st);
    }
    let Ok(_lock) = lock::try_lock(&ctx.config.vm_lock(vm)) else {
        return Ok(st);
    };
    let Some(mut st) = vmdir.load()? else { return Ok(st) };
    if st.phase != Phase::Installing {
        return Ok(st);
    }
    let unknown = outcome.is_none() && std::fs::symlink_metadata(&console).is_err();
    if outcome == Some(true) || unknown {
        st.phase = Phase::Installed;
        if unknown {
            st.reason = Some(format!(
                "no console log ({}): the identity could not be confirmed; turn on the hypervisor's console logging",
                console.display()
            ));
        }
        fsutil::remove_if_exists(&vmdir.identity_seed())
            .map_err(|e| Error::failed(format!("cannot remove the identity seed of {vm}: {e}")))?;
    } else {
        if running {
            hv.destroy(vm, vmdir)?;
        }
        st.phase = Phase::Failed;
        st.reason = Some(if outcome == Some(false) {
            "the clone refused its identity seed and powered off; see the console log".to_owned()
        } else {
            "the clone stopped before applying its identity; see the console log".to_owned()
        });
        discard(ctx, machine, vmdir, &st)?;
    }
    st.finished_at = Some(state::now());
    vmdir.save(&st)?;
    Ok(st)
}

/// Discards the clone `st` recorded (see `install::discard_clone`).
fn discard(ctx: &Ctx, machine: &Machine, vmdir: &VmDir, st: &VmState) -> Result<()> {
    let tpl = st.template.as_ref().and_then(|t| template::load(&ctx.config.templates_dir(), t).ok());
    super::install::discard_clone(machine, vmdir, tpl.as_ref())
}

fn opt_time(t: Option<u64>) -> Value {
    t.map(|t| Value::from(state::rfc3339(t))).unwrap_or(Value::Null)
}

pub fn status(ctx: &Ctx, vm: &VmName) -> Result<Outcome> {
    let machine = ctx.managed_machine(vm)?;
    let vmdir = VmDir::new(ctx.config, vm);
    let hv = hypervisor::for_config(ctx.config)?;
    let st = match vmdir.load()? {
        Some(st) => Some(settle(ctx, hv.as_ref(), &machine, &vmdir, st)?),
        None => None,
    };
    let running = hv.is_running(vm, &vmdir)?;
    let console = hv.console_log(vm, &vmdir);
    let console_tail = fsutil::last_line(&console);
    let stage = progress::stage(&console);
    let Some(st) = st else {
        return Ok(Outcome {
            human: format!("{vm}: no install recorded\n"),
            json: obj([
                ("vm", Value::from(vm.as_str())),
                ("state", Value::from("none")),
                ("image", Value::Null),
                ("started_at", Value::Null),
                ("finished_at", Value::Null),
                ("elapsed_s", Value::Null),
                ("console_tail", Value::Null),
            ]),
        });
    };
    let elapsed = st.started_at.map(|s| st.finished_at.unwrap_or_else(state::now).saturating_sub(s));
    let mut human = format!("{vm}: {} (image {}){}\n", st.phase.as_str(), st.image, if running { ", running" } else { "" });
    if let Some(s) = st.started_at {
        human.push_str(&format!("  started:  {}\n", state::rfc3339(s)));
    }
    if let Some(f) = st.finished_at {
        human.push_str(&format!("  finished: {}\n", state::rfc3339(f)));
    }
    if let Some(e) = elapsed {
        human.push_str(&format!("  elapsed:  {e} s\n"));
    }
    if let Some(r) = &st.reason {
        human.push_str(&format!("  reason:   {r}\n"));
    }
    if let Some(p) = stage {
        human.push_str(&format!("  progress: {}\n", p.as_str()));
    }
    // An unattended installer showing a dialog waits for ever: say so.
    let host_key = (st.template.is_some() && st.phase == Phase::Installed).then(|| ssh_host_key(&console)).flatten();
    if let Some(k) = &host_key {
        human.push_str(&format!("  ssh host key: {k} (ed25519)\n"));
    }
    let waiting = (st.phase == Phase::Installing && st.template.is_none() && running)
        .then(|| progress::waiting_dialog(&console))
        .flatten();
    if let Some(w) = &waiting {
        human.push_str(&format!(
            "  waiting:  the installer shows the dialog \"{w}\" and will not go on by itself; \
             see the console log, fix the cause (mirror, preseed) and cancel\n"
        ));
    }
    if let Some(c) = &console_tail {
        human.push_str(&format!("  console:  {c}\n"));
    }
    Ok(Outcome {
        human,
        json: obj([
            ("vm", Value::from(vm.as_str())),
            ("state", Value::from(st.phase.as_str())),
            ("image", Value::from(st.image.as_str())),
            ("prepared_at", Value::from(state::rfc3339(st.prepared_at))),
            ("started_at", opt_time(st.started_at)),
            ("finished_at", opt_time(st.finished_at)),
            ("elapsed_s", elapsed.map(Value::from).unwrap_or(Value::Null)),
            ("running", Value::from(running)),
            ("template", st.template.as_ref().map(|t| Value::from(t.as_str())).unwrap_or(Value::Null)),
            ("reason", st.reason.map(Value::from).unwrap_or(Value::Null)),
            ("progress", stage.map(|p| Value::from(p.as_str())).unwrap_or(Value::Null)),
            ("waiting_dialog", waiting.map(Value::from).unwrap_or(Value::Null)),
            ("ssh_host_key", host_key.map(Value::from).unwrap_or(Value::Null)),
            ("console_tail", console_tail.map(Value::from).unwrap_or(Value::Null)),
        ]),
    })
}

pub fn cancel(ctx: &Ctx, vm: &VmName) -> Result<Outcome> {
    let machine = ctx.managed_machine(vm)?;
    let vmdir = VmDir::new(ctx.config, vm);
    if vmdir.load()?.is_none() {
        return Err(Error::invalid(format!("machine {vm} has no install to cancel")));
    }
    let _lock = lock::try_lock(&ctx.config.vm_lock(vm))?;
    let Some(mut st) = vmdir.load()? else {
        return Err(Error::invalid(format!("machine {vm} has no install to cancel")));
    };
    if st.phase == Phase::Installed {
        return Err(Error::invalid(format!("the install of {vm} has already finished; nothing to cancel")));
    }
    let hv = hypervisor::for_config(ctx.config)?;
    hv.destroy(vm, &vmdir)?;
    vmdir.remove_media().map_err(|e| Error::failed(format!("cannot remove the install media of {vm}: {e}")))?;
    if st.template.is_some() {
        // A half-made (or never booted) clone goes with its install.
        discard(ctx, &machine, &vmdir, &st)?;
    }
    if st.phase != Phase::Cancelled {
        st.phase = Phase::Cancelled;
        st.finished_at = Some(state::now());
        vmdir.save(&st)?;
    }
    Ok(Outcome {
        human: format!("{vm}: install cancelled, media removed\n"),
        json: obj([("vm", Value::from(vm.as_str())), ("state", Value::from("cancelled"))]),
    })
}

pub fn list(ctx: &Ctx) -> Result<Outcome> {
    let mut human = String::new();
    let mut rows = Vec::new();
    for m in ctx.registry().all()? {
        if policy::may_manage(ctx.caller, ctx.config, &m) != Decision::Allow {
            continue;
        }
        let phase = VmDir::new(ctx.config, &m.name).load()?.map(|s| s.phase.as_str()).unwrap_or("none");
        human.push_str(&format!("{:<24} {:<12} {}\n", m.name, phase, m.network.ip()));
        rows.push(Value::Object(obj([
            ("vm", Value::from(m.name.as_str())),
            ("state", Value::from(phase)),
            ("ip", Value::from(m.network.ip().to_string())),
            ("image", m.image.as_ref().map(|i| Value::from(i.as_str())).unwrap_or(Value::Null)),
        ])));
    }
    if rows.is_empty() {
        human.push_str("no machines you may manage\n");
    }
    Ok(Outcome { human, json: obj([("machines", Value::Array(rows))]) })
}
