//! `status`, `cancel` and `list`: what an owner sees of their machines.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::hypervisor;
use crate::lifecycle;
use crate::registry::Machine;
use crate::policy::{self, Decision};
use crate::state::{self, Phase, VmDir};
use crate::types::VmName;
use crate::console;
use crate::progress;
use serde_json::Value;

fn opt_time(t: Option<u64>) -> Value {
    t.map(|t| Value::from(state::rfc3339(t))).unwrap_or(Value::Null)
}

pub fn status(ctx: &Ctx, vm: &VmName) -> Result<Outcome> {
    let machine = ctx.managed_machine(vm)?;
    let vmdir = VmDir::new(ctx.config, vm);
    // Settled under the machine's lock; if another request holds it, that
    // request settles, and this one only reports what is recorded.
    // A machine with no install has nothing to settle: status then creates
    // nothing (no lock file, no directory).
    let st = match lifecycle::hold_recorded(ctx.config, &machine) {
        Ok(Some(held)) => held.settle()?,
        Ok(None) => None,
        Err(e) if e.kind == crate::error::Kind::Busy => vmdir.load()?,
        Err(e) => return Err(e),
    };
    let Some(st) = st else {
        let mut json = obj([
                ("vm", Value::from(vm.as_str())),
                ("state", Value::from("none")),
                ("image", Value::Null),
                ("started_at", Value::Null),
                ("finished_at", Value::Null),
                ("elapsed_s", Value::Null),
                ("console_tail", Value::Null),
        ]);
        json.extend(address_fields(&machine.network));
        return Ok(Outcome { human: format!("{vm}: no install recorded\n  address:  {}\n", machine.network.describe()), json });
    };
    let hv = hypervisor::for_config(ctx.config)?;
    let running = hv.is_running(vm, &vmdir)?;
    let console = hv.console_log(vm, &vmdir);
    // The log is read once, from its end, for all that is shown of it (it
    // may be megabytes); and only once this install has started a guest:
    // before that, what it holds is an earlier run's (the xl driver moves
    // it aside only when it starts the next).
    let tail = st.started_at.and_then(|_| console::tail(&console));
    let console_tail = tail.as_deref().and_then(console::last_line_of);
    let stage = tail.as_deref().and_then(progress::stage_of);
    let elapsed = st.started_at.map(|s| st.finished_at.unwrap_or_else(state::now).saturating_sub(s));
    let source = match (&st.template, &st.image) {
        (Some(t), Some(i)) => format!("template {t}, image {i}"),
        (Some(t), None) => format!("template {t}"),
        (None, Some(i)) => format!("image {i}"),
        (None, None) => "no image".to_owned(),
    };
    let mut human = format!(
        "{vm}: {} ({source}){}\n",
        st.phase.as_str(),
        match (running, st.phase) {
            (true, _) => ", running",
            (false, Phase::Installed) => ", stopped",
            (false, _) => "",
        }
    );
    human.push_str(&format!("  address:  {}\n", machine.network.describe()));
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
    // The host key recorded when the install was (see `lifecycle`), for
    // the owner's known_hosts; the console it came from is gone after a
    // restart.
    let host_key = st.ssh_host_key.as_ref().map(|k| k.as_str().to_owned());
    if let Some(k) = &host_key {
        human.push_str(&format!("  ssh host key: {k} (ed25519)\n"));
    }
    // An unattended installer showing a dialog waits for ever: say so.
    let waiting = (st.phase == Phase::Installing && st.template.is_none() && running)
        .then(|| tail.as_deref().and_then(progress::dialog_of))
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
            ("image", st.image.as_ref().map(|i| Value::from(i.as_str())).unwrap_or(Value::Null)),
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
        ])
        .into_iter()
        .chain(address_fields(&machine.network))
        .collect(),
    })
}

/// `ip` (the IPv4 address, `dhcp`, or null) and `ip6` (the IPv6 address,
/// or null): where the owner finds the machine.
pub(crate) fn address_fields(n: &crate::types::Network) -> [(String, Value); 2] {
    [
        ("ip".into(), n.ip_word().map(Value::from).unwrap_or(Value::Null)),
        ("ip6".into(), n.v6().map(|b| Value::from(b.addr().addr().to_string())).unwrap_or(Value::Null)),
    ]
}

pub fn cancel(ctx: &Ctx, vm: &VmName) -> Result<Outcome> {
    let machine = ctx.managed_machine(vm)?;
    let held = lifecycle::hold_recorded(ctx.config, &machine)?
        .ok_or_else(|| Error::invalid(format!("machine {vm} has no install to cancel")))?;
    held.cancel()?;
    Ok(Outcome {
        human: format!("{vm}: install cancelled, media removed\n"),
        json: obj([("vm", Value::from(vm.as_str())), ("state", Value::from("cancelled"))]),
    })
}

/// `settle` (root, from the package's systemd timer): settles every
/// machine that no other request holds, so finished installs are recorded
/// and the media and seeds (they hold the password hash) go at once.
pub fn settle(ctx: &Ctx) -> Result<Outcome> {
    ctx.require_local_admin()?;
    let mut human = String::new();
    let mut rows = Vec::new();
    let mut failures = 0;
    for m in ctx.registry().all()? {
        let (state, note) = match settle_one(ctx, &m) {
            Ok(state) => (state, None),
            Err(e) => ("error", Some(e.message)),
        };
        failures += usize::from(note.is_some());
        human.push_str(&format!("{:<24} {}{}\n", m.name, state, note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()));
        rows.push(Value::Object(obj([
            ("vm", Value::from(m.name.as_str())),
            ("state", Value::from(state)),
            ("error", note.map(Value::from).unwrap_or(Value::Null)),
        ])));
    }
    if failures > 0 {
        return Err(Error::failed(format!("{failures} machine(s) could not be settled:\n{human}")));
    }
    Ok(Outcome { human, json: obj([("machines", Value::Array(rows))]) })
}

/// One machine's state after settling, or `busy`; a machine with nothing
/// on record is not touched (no lock file is made for it).
fn settle_one(ctx: &Ctx, m: &Machine) -> Result<&'static str> {
    match lifecycle::hold_recorded(ctx.config, m) {
        Ok(None) => Ok("none"),
        Ok(Some(held)) => Ok(held.settle()?.map(|s| s.phase.as_str()).unwrap_or("none")),
        Err(e) if e.kind == crate::error::Kind::Busy => Ok("busy"),
        Err(e) => Err(e),
    }
}

pub fn list(ctx: &Ctx) -> Result<Outcome> {
    let mut human = String::new();
    let mut rows = Vec::new();
    let hv = hypervisor::for_config(ctx.config)?;
    for m in ctx.registry().all()? {
        if policy::may_manage(ctx.caller, ctx.config, &m) != Decision::Allow {
            continue;
        }
        let vmdir = VmDir::new(ctx.config, &m.name);
        let st = vmdir.load()?;
        let phase = st.as_ref().map(|s| s.phase);
        // What is (being) installed, as status says; else the defaults an
        // install would use.
        let (image, template) = match &st {
            Some(s) => (s.image.as_ref().map(|i| i.as_str()), s.template.as_ref().map(|t| t.as_str())),
            None => (m.image.as_ref().map(|i| i.as_str()), m.template.as_ref().map(|t| t.as_str())),
        };
        // Installed machines show whether they run (an observation for
        // display only: nothing is decided on it).
        let running = match phase {
            Some(Phase::Installed) => Some(hv.is_running(&m.name, &vmdir)?),
            _ => None,
        };
        let shown = match (phase, running) {
            (_, Some(true)) => "running",
            (_, Some(false)) => "stopped",
            (Some(p), None) => p.as_str(),
            (None, None) => "none",
        };
        let phase = phase.map(|p| p.as_str()).unwrap_or("none");
        human.push_str(&format!("{:<24} {:<12} {}\n", m.name, shown, addresses_word(&m.network)));
        let mut row = obj([
            ("vm", Value::from(m.name.as_str())),
            ("state", Value::from(phase)),
            ("running", running.map(Value::from).unwrap_or(Value::Null)),
            ("image", image.map(Value::from).unwrap_or(Value::Null)),
            ("template", template.map(Value::from).unwrap_or(Value::Null)),
        ]);
        row.extend(address_fields(&m.network));
        rows.push(Value::Object(row));
    }
    if rows.is_empty() {
        human.push_str("no machines you may manage\n");
    }
    Ok(Outcome { human, json: obj([("machines", Value::Array(rows))]) })
}

/// A machine's addresses in one word for `list`: `192.0.2.10`,
/// `2001:db8::10`, both joined by a comma, or `dhcp`.
pub(crate) fn addresses_word(n: &crate::types::Network) -> String {
    let mut w: Vec<String> = n.ip_word().into_iter().collect();
    w.extend(n.v6().map(|b| b.addr().addr().to_string()));
    w.join(",")
}
