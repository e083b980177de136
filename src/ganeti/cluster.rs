//! Cluster mode (`[cluster] engine = "ganeti"`): on a Ganeti master the
//! front door keeps its callers, policy and registry, and a machine is a
//! Ganeti instance named `VM.DOMAIN` running our OS definition.
//!
//! - `install VM` submits one Ganeti job: a new instance
//!   (`OP_INSTANCE_CREATE`) or, for an existing one of ours, a reinstall
//!   (`OP_INSTANCE_REINSTALL`, after stopping it), then a start unless
//!   `--no-start`. The root password hash is a *secret* OS parameter
//!   (stored nowhere by Ganeti). It never appears in an argv: the job is
//!   a mode-0600 opcode file in the machine's root-only directory, handed
//!   to `gnt-debug submit-job` (the one gnt-* command that reads a job
//!   from a file) and removed as soon as it returns. The request waits for
//!   the job, bounded by `job_s`.
//! - `status` reads the instance and its latest install job; `start`,
//!   `stop [--force]`, `reboot` run `gnt-instance startup|shutdown|reboot`;
//!   `cancel` cancels the install job while Ganeti still can (queued or
//!   waiting for locks).
//!
//! Every gnt-* program runs by argv with a time limit (`exec`).

use super::gnt::{job_list, latest_install_job, machine_tag, opcodes, our_instances, submit, watching, Gnt, Instance, Job, JobWatch};
use crate::commands::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::registry::Machine;
use crate::steps::Steps;
use crate::types::{DomainName, Hostname, TemplateName, VmName};
use serde_json::Value;
use std::io::Read;

pub use super::cluster_config::ClusterConfig;

pub fn instance_name(vm: &VmName, domain: &DomainName) -> String {
    format!("{vm}.{domain}")
}

/// Runs `cmd` in cluster mode. Caller and policy come first, as always.
pub fn dispatch(ctx: &Ctx, c: &ClusterConfig, cmd: &crate::cli::Command, stdin: &mut dyn Read) -> Result<Outcome> {
    use crate::cli::Command as C;
    let vm = match cmd {
        C::Install { vm, .. } | C::Status { vm } | C::Cancel { vm } | C::Start { vm } | C::Stop { vm, .. } | C::Reboot { vm } => vm,
        _ => unreachable!("only machine commands are dispatched here"),
    };
    let machine = ctx.managed_machine(vm)?;
    let gnt = Gnt { c, name: instance_name(vm, &ctx.config.domain) };
    match cmd {
        C::Install { hostname, image, template, no_start, no_keys, .. } => {
            let how = How { no_start: *no_start, no_keys: *no_keys };
            install(ctx, &gnt, &machine, hostname.as_ref(), image.is_some(), template.as_ref(), how, stdin, &Steps::stderr())
        }
        C::Status { .. } => status(&gnt, &machine),
        C::Cancel { .. } => cancel(&gnt, &machine),
        C::Start { .. } => power(ctx, &gnt, &machine, Power::Start),
        C::Stop { force, .. } => power(ctx, &gnt, &machine, Power::Stop { force: *force }),
        C::Reboot { .. } => power(ctx, &gnt, &machine, Power::Reboot),
        _ => unreachable!(),
    }
}

fn ours(c: &ClusterConfig, i: &Instance) -> Option<TemplateName> {
    i.os.strip_prefix(&format!("{}+", c.os.0)).and_then(|v| TemplateName::parse(v).ok())
}

/// An instance of the machine's name is this machine only if it runs our
/// OS and carries the tag our create gave it: a cluster's other instances
/// (someone's `VM.DOMAIN` made by hand) are never ours to power, reinstall
/// or list. Its template if it is.
fn machines_template(c: &ClusterConfig, i: &Instance, vm: &VmName) -> Option<TemplateName> {
    ours(c, i).filter(|_| i.tags.contains(&machine_tag(vm)))
}

fn ours_for(gnt: &Gnt, i: &Instance, vm: &VmName) -> Result<TemplateName> {
    machines_template(gnt.c, i, vm).ok_or_else(|| {
        Error::failed(format!(
            "Ganeti instance {} is not this machine's (OS {}, not {}+TEMPLATE, or no tag {}): it is not ours to manage; ask an admin",
            gnt.name,
            i.os,
            gnt.c.os.0,
            machine_tag(vm)
        ))
    })
}

/// An install's flags: `--no-start`, `keys=none`.
#[derive(Debug, Clone, Copy)]
struct How {
    no_start: bool,
    no_keys: bool,
}

#[allow(clippy::too_many_arguments)]
fn install(
    ctx: &Ctx,
    gnt: &Gnt,
    m: &Machine,
    hostname: Option<&Hostname>,
    image: bool,
    template: Option<&TemplateName>,
    how: How,
    stdin: &mut dyn Read,
    steps: &Steps,
) -> Result<Outcome> {
    let vm = &m.name;
    let no_start = how.no_start;
    if image {
        return Err(Error::invalid("in cluster mode machines are cloned from golden templates: give template=T (see `templates`), not image="));
    }
    if hostname.is_some_and(|h| h.as_str() != vm.as_str()) {
        return Err(Error::invalid(format!("in cluster mode the host name is the instance's name ({}); leave out hostname=", gnt.name)));
    }
    // The OS definition gives an instance the static IPv4 network of its
    // NIC and OS parameters, or DHCP for a NIC without an address. Its
    // IPv6 address comes from the NIC's Ganeti network (the MAC's EUI-64
    // in that network's prefix), which the job does not choose: a
    // registered IPv6 address could not be the one the instance gets.
    if m.network.v6().is_some() {
        return Err(Error::invalid(format!(
            "in cluster mode a machine has a static IPv4 network (ip= netmask= gateway=) or ip=dhcp; {vm} has {}: register it again with one",
            m.network.describe()
        )));
    }
    let v4 = m.network.v4();
    let tname = template.or(m.template.as_ref()).ok_or_else(|| Error::invalid("no template given and the machine has none: add template=T (see `templates`)"))?;
    // A disk smaller than the template would fail only inside the job, on
    // the node: refused here when the master has the template too.
    if let Ok(t) = crate::template::load(&ctx.config.templates_dir(), tname) {
        let have = super::gnt::disk_mib(gnt.c, m);
        let need = t.manifest.root.bytes.div_ceil(1 << 20);
        if have < need {
            return Err(Error::invalid(format!("{vm}'s disk ({have} MiB) is smaller than template {tname} ({need} MiB); give the machine a larger size=")));
        }
    }
    // The caller's keys (the public OS parameter ssh_keys) and password (the
    // secret root_hash), as on a single host.
    let store = crate::keystore::KeyStore::new(ctx.config.state_dir.path());
    let root = crate::rootlogin::for_request(ctx.caller, &store, how.no_keys, stdin)?;
    let config = ctx.config;
    // The machine's lock, its directory, and a killed request's job file
    // (a hidden `.tmp-` temporary) cleared: as for every other request.
    let held = crate::lifecycle::hold(config, m)?;
    let vmdir = &held.vmdir;
    let before = gnt.install_job()?;
    if before.as_ref().is_some_and(|j| j.active()) {
        return Err(Error::busy(format!("an install job for {} is already in Ganeti's queue; see `status {vm}`", gnt.name)));
    }
    let existing = gnt.instance()?;
    if let Some(i) = &existing {
        ours_for(gnt, i, vm)?;
        // A reinstall keeps the instance's NIC, which gives the guest its
        // address: it must be the machine's as registered.
        let registered = v4.map(|v| v.ip().to_string());
        if i.nic_ip != registered || !i.nic_mac.eq_ignore_ascii_case(&m.mac.to_string()) {
            return Err(Error::failed(format!(
                "Ganeti instance {}'s NIC 0 (address {}, MAC {}) is not {vm}'s as registered (address {}, MAC {}): a reinstall keeps the NIC; ask an admin to change the NIC (gnt-instance modify --net 0:modify,...) or the machine",
                gnt.name,
                i.nic_ip.as_deref().unwrap_or("none: DHCP"),
                i.nic_mac,
                registered.as_deref().unwrap_or("DHCP"),
                m.mac
            )));
        }
        if i.running {
            steps.step(&format!("stopping Ganeti instance {}", gnt.name));
            let t = config.timeouts.stop_s.to_string();
            gnt.run(gnt.c.gnt_instance.path(), &["shutdown", "--timeout", &t, &gnt.name], gnt.c.command() + config.timeouts.stop())?;
        }
    }
    let ops = opcodes(gnt, m, v4, tname, &root, existing.is_some(), !no_start, &ctx.caller.to_string());
    steps.step(&format!("submitting the Ganeti job ({} of {})", if existing.is_some() { "reinstall" } else { "create" }, gnt.name));
    let mut watch = JobWatch { after: before.map(|j| j.id), seen: None };
    let (job, why) = watching(gnt, &mut watch, steps, || submit(gnt, vmdir, &ops))?;
    let done = gnt.install_job()?.filter(|j| j.id == job);
    if let Some(j) = &done {
        watch.note(j, steps);
    }
    let status = done.as_ref().map(|j| j.status.as_str()).unwrap_or("unknown");
    if status != "success" {
        // Ganeti keeps an instance whose create failed: a new one goes, so
        // that nothing half-made is left (a reinstalled one stays, as it was
        // or with its clone wiped by our create).
        if existing.is_none() && gnt.instance()?.is_some() {
            let _ = gnt.run(gnt.c.gnt_instance.path(), &["remove", "-f", &gnt.name], gnt.c.command());
        }
        return Err(Error::failed(format!(
            "Ganeti job {job} ({} of {}) ended {status}{}; see `gnt-job info {job}` on the master",
            if existing.is_some() { "reinstall" } else { "create" },
            gnt.name,
            why.map(|w| format!(": {w}")).unwrap_or_default()
        )));
    }
    let running = gnt.instance()?.is_some_and(|i| i.running);
    let action = if existing.is_some() { "reinstalled" } else { "created" };
    Ok(Outcome {
        human: format!(
            "{vm}: Ganeti instance {} {action} from template {tname} (job {job}){}\n  root login: {}\n",
            gnt.name,
            if running { ", started" } else { "" },
            root.describe()
        ),
        json: obj([
            ("vm", Value::from(vm.as_str())),
            ("state", Value::from("installed")),
            ("template", Value::from(tname.as_str())),
            ("cluster", Value::from("ganeti")),
            ("instance", Value::from(gnt.name.as_str())),
            ("action", Value::from(action)),
            ("job", Value::from(job)),
            ("running", Value::from(running)),
            ("root_login", root.json()),
        ]),
    })
}

/// A machine's state from its instance and latest install job.
fn state_of(inst: Option<&Instance>, job: Option<&Job>) -> &'static str {
    match (inst, job) {
        (_, Some(j)) if j.active() => "installing",
        (_, Some(j)) if j.status == "error" => "failed",
        (_, Some(j)) if j.status == "canceled" => "cancelled",
        (Some(_), _) => "installed",
        (None, _) => "none",
    }
}

/// `list`: the machines the caller may manage, each with the instance our
/// create made for it (our OS and our `guest-installer:VM` tag; another
/// instance of its name is not it) as Ganeti shows it.
pub fn list(ctx: &Ctx, c: &ClusterConfig) -> Result<Outcome> {
    let machines: Vec<Machine> =
        ctx.registry().all()?.into_iter().filter(|m| crate::policy::may_manage(ctx.caller, ctx.config, m) == crate::policy::Decision::Allow).collect();
    let (instances, jobs) = if machines.is_empty() { Default::default() } else { (our_instances(c)?, job_list(c)?) };
    let mut human = String::new();
    let mut rows = Vec::new();
    for m in &machines {
        let name = instance_name(&m.name, &ctx.config.domain);
        let (inst, template) = match instances.get(&name).and_then(|i| Some((i, machines_template(c, i, &m.name)?))) {
            Some((i, t)) => (Some(i), Some(t)),
            None => (None, None),
        };
        let job = latest_install_job(&jobs, &name);
        let state = state_of(inst, job.as_ref());
        let running = inst.map(|i| i.running);
        let shown = match running {
            Some(true) => "running",
            Some(false) if state == "installed" => "stopped",
            _ => state,
        };
        human.push_str(&format!("{:<24} {:<12} {:<16} {}\n", m.name, shown, crate::commands::status::addresses_word(&m.network), name));
        let mut row = obj([
            ("vm", Value::from(m.name.as_str())),
            ("state", Value::from(state)),
            ("running", running.map(Value::from).unwrap_or(Value::Null)),
            ("image", Value::Null),
            ("template", template.as_ref().map(|t| Value::from(t.as_str())).unwrap_or(Value::Null)),
            ("cluster", Value::from("ganeti")),
            ("instance", Value::from(name.as_str())),
            ("instance_status", inst.map(|i| Value::from(i.status.as_str())).unwrap_or(Value::Null)),
        ]);
        row.extend(crate::commands::status::address_fields(&m.network));
        rows.push(Value::Object(row));
    }
    if rows.is_empty() {
        human.push_str("no machines you may manage\n");
    }
    Ok(Outcome { human, json: obj([("machines", Value::Array(rows))]) })
}

fn status(gnt: &Gnt, m: &Machine) -> Result<Outcome> {
    let inst = gnt.instance()?;
    let job = gnt.install_job()?;
    let state = state_of(inst.as_ref(), job.as_ref());
    let template = inst.as_ref().and_then(|i| ours(gnt.c, i));
    let (started, finished) = (job.as_ref().and_then(|j| j.received), job.as_ref().and_then(|j| j.ended));
    let elapsed = started.map(|s| finished.unwrap_or_else(crate::state::now).saturating_sub(s));
    let running = inst.as_ref().is_some_and(|i| i.running);
    let human = format!(
        "{}: {state}{} (Ganeti instance {}{}{})\n",
        m.name,
        if running { ", running" } else { "" },
        gnt.name,
        inst.as_ref().map(|i| format!(", {} {}", i.os, i.status)).unwrap_or_else(|| ", not created".into()),
        job.as_ref().map(|j| format!(", job {} {}", j.id, j.status)).unwrap_or_default(),
    );
    Ok(Outcome {
        human,
        json: obj([
            ("vm", Value::from(m.name.as_str())),
            ("state", Value::from(state)),
            ("running", Value::from(running)),
            ("image", template.as_ref().map(|t| Value::from(t.as_str())).unwrap_or(Value::Null)),
            ("template", template.as_ref().map(|t| Value::from(t.as_str())).unwrap_or(Value::Null)),
            ("started_at", started.map(|s| Value::from(crate::state::rfc3339(s))).unwrap_or(Value::Null)),
            ("finished_at", finished.map(|s| Value::from(crate::state::rfc3339(s))).unwrap_or(Value::Null)),
            ("elapsed_s", elapsed.map(Value::from).unwrap_or(Value::Null)),
            ("console_tail", Value::Null),
            ("cluster", Value::from("ganeti")),
            ("instance", Value::from(gnt.name.as_str())),
            ("instance_status", inst.as_ref().map(|i| Value::from(i.status.as_str())).unwrap_or(Value::Null)),
            ("job", job.as_ref().map(|j| Value::from(j.id)).unwrap_or(Value::Null)),
            ("job_status", job.as_ref().map(|j| Value::from(j.status.as_str())).unwrap_or(Value::Null)),
        ]),
    })
}

fn cancel(gnt: &Gnt, m: &Machine) -> Result<Outcome> {
    let vm = &m.name;
    let Some(job) = gnt.install_job()?.filter(|j| j.active()) else {
        return Err(Error::invalid(format!("no install of {vm} is in progress; nothing to cancel")));
    };
    if !job.pending() {
        // `gnt-job cancel --kill` would SIGKILL it mid-way, which Ganeti
        // documents as leaving what the job touched inconsistent: disks
        // made and not attached, locks, a half-written clone.
        return Err(Error::busy(format!(
            "Ganeti job {} is already running the install of {vm}; Ganeti stops a running job only by killing it, which leaves its disks and locks inconsistent, so it is not cancelled: wait for it (`status {vm}`)",
            job.id
        )));
    }
    let id = job.id.to_string();
    gnt.run(gnt.c.gnt_job.path(), &["cancel", &id], gnt.c.command())?;
    Ok(Outcome {
        human: format!("{vm}: install job {id} cancelled\n"),
        json: obj([("vm", Value::from(vm.as_str())), ("state", Value::from("cancelled")), ("job", Value::from(job.id)), ("cluster", Value::from("ganeti"))]),
    })
}

/// What an owner asks of a running machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    Start,
    Stop { force: bool },
    Reboot,
}

fn power(ctx: &Ctx, gnt: &Gnt, m: &Machine, what: Power) -> Result<Outcome> {
    let vm = &m.name;
    let _held = crate::lifecycle::hold(ctx.config, m)?;
    if gnt.install_job()?.is_some_and(|j| j.active()) {
        return Err(Error::busy(format!("machine {vm} is being installed; wait until `status {vm}` says installed, or cancel it")));
    }
    let Some(inst) = gnt.instance()? else {
        return Err(Error::invalid(format!("nothing is installed on machine {vm}; install it first")));
    };
    ours_for(gnt, &inst, vm)?;
    let stop = ctx.config.timeouts.stop_s.to_string();
    let limit = gnt.c.command() + ctx.config.timeouts.stop();
    let (args, action, running): (Vec<&str>, &str, bool) = match what {
        Power::Start if inst.running => return Err(Error::busy(format!("machine {vm} is already running"))),
        Power::Start => (vec!["startup", &gnt.name], "start", true),
        Power::Reboot if !inst.running => return Err(Error::invalid(format!("machine {vm} is not running; `start {vm}` starts it"))),
        Power::Reboot => (vec!["reboot", &gnt.name], "reboot", true),
        // Ganeti waits for a clean shutdown up to the timeout, then stops
        // the instance outright; --force gives it no time.
        Power::Stop { force: false } => (vec!["shutdown", "--timeout", &stop, &gnt.name], "stop", false),
        Power::Stop { force: true } => (vec!["shutdown", "--timeout", "0", &gnt.name], "stop", false),
    };
    if action == "stop" && !inst.running {
        return Ok(Outcome {
            human: format!("{vm}: not running\n"),
            json: obj([("vm", Value::from(vm.as_str())), ("action", Value::from("stop")), ("state", Value::from("installed")), ("running", Value::from(false)), ("forced", Value::from(false))]),
        });
    }
    gnt.run(gnt.c.gnt_instance.path(), &args, limit)?;
    Ok(Outcome {
        human: format!("{vm}: {action} done (Ganeti instance {})\n", gnt.name),
        json: obj([
            ("vm", Value::from(vm.as_str())),
            ("action", Value::from(action)),
            ("state", Value::from("installed")),
            ("running", Value::from(running)),
            ("forced", Value::from(what == Power::Stop { force: true })),
            ("cluster", Value::from("ganeti")),
            ("instance", Value::from(gnt.name.as_str())),
        ]),
    })
}
