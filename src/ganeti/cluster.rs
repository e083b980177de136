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

use crate::commands::{obj, Ctx, Outcome};
use crate::config::AbsPath;
use crate::error::{Error, Result};
use crate::exec::{self, ExecError};
use crate::registry::Machine;
use crate::secret::CryptHash;
use crate::state::VmDir;
use crate::types::{DomainName, Hostname, Rule, TemplateName, VmName};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// `[cluster]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub engine: Engine,
    /// Ganeti's disk template for new instances (`drbd`, `plain`, `file`, ...).
    pub disk_template: DiskTemplate,
    /// Size of disk 0 of a new instance, MiB (at least the templates' size).
    #[serde(default = "default_disk_mib")]
    pub disk_mib: u64,
    /// Where new instances go: a primary node (and, for drbd, a
    /// secondary), or an iallocator; exactly one of node and iallocator.
    #[serde(default)]
    pub node: Option<DomainName>,
    #[serde(default)]
    pub secondary_node: Option<DomainName>,
    #[serde(default)]
    pub iallocator: Option<Word>,
    /// The OS definition's name.
    #[serde(default = "default_os")]
    pub os: Word,
    #[serde(default = "default_gnt_instance")]
    pub gnt_instance: AbsPath,
    #[serde(default = "default_gnt_job")]
    pub gnt_job: AbsPath,
    #[serde(default = "default_gnt_debug")]
    pub gnt_debug: AbsPath,
    /// Bound on one install job (disks, clone, start), seconds.
    #[serde(default = "default_job_s")]
    pub job_s: u64,
    /// Bound on every other gnt-* call, seconds.
    #[serde(default = "default_command_s")]
    pub command_s: u64,
}

fn default_disk_mib() -> u64 {
    10240
}
fn default_os() -> Word {
    Word("guest-installer".into())
}
fn default_gnt_instance() -> AbsPath {
    AbsPath::from_static("/usr/sbin/gnt-instance")
}
fn default_gnt_job() -> AbsPath {
    AbsPath::from_static("/usr/sbin/gnt-job")
}
fn default_gnt_debug() -> AbsPath {
    AbsPath::from_static("/usr/sbin/gnt-debug")
}
fn default_job_s() -> u64 {
    1800
}
fn default_command_s() -> u64 {
    300
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Ganeti,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskTemplate {
    Plain,
    Drbd,
    File,
    Sharedfile,
    Blockdev,
    Rbd,
    Ext,
    Gluster,
}

impl DiskTemplate {
    fn as_str(self) -> &'static str {
        match self {
            DiskTemplate::Plain => "plain",
            DiskTemplate::Drbd => "drbd",
            DiskTemplate::File => "file",
            DiskTemplate::Sharedfile => "sharedfile",
            DiskTemplate::Blockdev => "blockdev",
            DiskTemplate::Rbd => "rbd",
            DiskTemplate::Ext => "ext",
            DiskTemplate::Gluster => "gluster",
        }
    }
}

/// A Ganeti name such as an OS or an iallocator: lowercase letters,
/// digits, '-' and '_'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word(String);

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            Ok(Word(s))
        } else {
            Err(serde::de::Error::custom("must be 1-64 characters of a-z, 0-9, '-' and '_'"))
        }
    }
}

impl ClusterConfig {
    /// Checks what serde cannot: where instances go.
    pub fn check(&self) -> std::result::Result<(), Rule> {
        match (&self.node, &self.iallocator) {
            (Some(_), Some(_)) | (None, None) => return Err(Rule("[cluster] needs exactly one of node and iallocator")),
            _ => {}
        }
        if self.secondary_node.is_some() && self.node.is_none() {
            return Err(Rule("[cluster] secondary_node needs node"));
        }
        Ok(())
    }
    fn command(&self) -> Duration {
        Duration::from_secs(self.command_s)
    }
}

/// The instance a machine is, in cluster mode.
pub fn instance_name(vm: &VmName, domain: &DomainName) -> String {
    format!("{vm}.{domain}")
}

fn gnt_error(e: ExecError) -> Error {
    match e {
        ExecError::TimedOut { .. } => Error::failed(format!("{e}; the Ganeti job may still run: see `status`")),
        e => Error::failed(e.to_string()),
    }
}

/// The instance as `gnt-instance list` shows it.
#[derive(Debug)]
struct Instance {
    os: String,
    running: bool,
    status: String,
}

/// One install job (create or reinstall) of an instance.
#[derive(Debug)]
struct Job {
    id: u64,
    status: String,
    received: Option<u64>,
    ended: Option<u64>,
}

impl Job {
    fn pending(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "waiting" | "canceling")
    }
    fn active(&self) -> bool {
        self.pending() || self.status == "running"
    }
}

struct Gnt<'a> {
    c: &'a ClusterConfig,
    name: String,
}

impl Gnt<'_> {
    fn instance(&self) -> Result<Option<Instance>> {
        // `name == "N"` becomes a lookup that fails for an unknown name;
        // a regular expression (of a name that is only [a-z0-9.-]) does not.
        let filter = format!("name =~ m/^{}$/", self.name.replace('.', "\\."));
        let o = exec::run(
            self.c.gnt_instance.path(),
            &["list", "--no-headers", "--separator=|", "-o", "name,os,oper_state,status", "-F", &filter],
            self.c.command(),
        )
        .map_err(gnt_error)?;
        let Some(line) = o.stdout.lines().find(|l| l.split('|').next() == Some(self.name.as_str())) else { return Ok(None) };
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 4 {
            return Err(Error::failed(format!("gnt-instance list gave an unexpected line for {}", self.name)));
        }
        Ok(Some(Instance { os: f[1].to_owned(), running: f[2] == "Y", status: f[3].to_owned() }))
    }

    /// The latest create or reinstall job of the instance still in the queue.
    fn install_job(&self) -> Result<Option<Job>> {
        let out = tempfile::tempfile().map_err(|e| Error::failed(format!("cannot make a scratch file: {e}")))?;
        let mut copy = out.try_clone().map_err(|e| Error::failed(format!("cannot make a scratch file: {e}")))?;
        exec::run_with_stdout(
            self.c.gnt_job.path(),
            &["list", "--no-headers", "--separator=|", "-o", "id,status,summary,received_ts,end_ts"],
            self.c.command(),
            out,
        )
        .map_err(gnt_error)?;
        let mut text = String::new();
        use std::io::Seek;
        copy.seek(std::io::SeekFrom::Start(0)).and_then(|_| copy.take(16 << 20).read_to_string(&mut text)).map_err(|e| Error::failed(format!("cannot read gnt-job's output: {e}")))?;
        Ok(latest_install_job(&text, &self.name))
    }

    fn run(&self, program: &Path, args: &[&str], limit: Duration) -> Result<exec::Output> {
        exec::run(program, args, limit).map_err(gnt_error)
    }
}

fn ts(field: &str) -> Option<u64> {
    field.trim_start_matches('[').split(',').next()?.trim().parse().ok()
}

/// From `gnt-job list` lines `id|status|summary|received|end`.
fn latest_install_job(text: &str, name: &str) -> Option<Job> {
    let ours = [format!("INSTANCE_CREATE({name})"), format!("INSTANCE_REINSTALL({name})")];
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(5, '|').collect();
            if f.len() != 5 || !ours.iter().any(|o| f[2].split(',').next() == Some(o.as_str())) {
                return None;
            }
            Some(Job { id: f[0].trim().parse().ok()?, status: f[1].to_owned(), received: ts(f[3]), ended: ts(f[4]) })
        })
        .max_by_key(|j| j.id)
}

/// Runs `cmd` in cluster mode. Caller and policy come first, as always.
pub fn run(ctx: &Ctx, c: &ClusterConfig, cmd: &crate::cli::Command, stdin: &mut dyn Read) -> Result<Outcome> {
    use crate::cli::Command as C;
    let vm = match cmd {
        C::Install { vm, .. } | C::Status { vm } | C::Cancel { vm } | C::Start { vm } | C::Stop { vm, .. } | C::Reboot { vm } => vm,
        _ => unreachable!("only machine commands are dispatched here"),
    };
    let machine = ctx.managed_machine(vm)?;
    let gnt = Gnt { c, name: instance_name(vm, &ctx.config.domain) };
    match cmd {
        C::Install { hostname, image, template, no_start, .. } => install(ctx, &gnt, &machine, hostname.as_ref(), image.is_some(), template.as_ref(), *no_start, stdin),
        C::Status { .. } => status(&gnt, &machine),
        C::Cancel { .. } => cancel(&gnt, &machine),
        C::Start { .. } => power(ctx, &gnt, &machine, "start"),
        C::Stop { force, .. } => power(ctx, &gnt, &machine, if *force { "stop-force" } else { "stop" }),
        C::Reboot { .. } => power(ctx, &gnt, &machine, "reboot"),
        _ => unreachable!(),
    }
}

fn ours(c: &ClusterConfig, i: &Instance) -> Option<TemplateName> {
    i.os.strip_prefix(&format!("{}+", c.os.0)).and_then(|v| TemplateName::parse(v).ok())
}

#[allow(clippy::too_many_arguments)]
fn install(
    ctx: &Ctx,
    gnt: &Gnt,
    m: &Machine,
    hostname: Option<&Hostname>,
    image: bool,
    template: Option<&TemplateName>,
    no_start: bool,
    stdin: &mut dyn Read,
) -> Result<Outcome> {
    let vm = &m.name;
    if image {
        return Err(Error::invalid("in cluster mode machines are cloned from golden templates: give template=T (see `templates`), not image="));
    }
    if hostname.is_some_and(|h| h.as_str() != vm.as_str()) {
        return Err(Error::invalid(format!("in cluster mode the host name is the instance's name ({}); leave out hostname=", gnt.name)));
    }
    let tname = template.or(m.template.as_ref()).ok_or_else(|| Error::invalid("no template given and the machine has none: add template=T (see `templates`)"))?;
    let root_hash = CryptHash::read_from(&mut *stdin).map_err(|rule| Error::invalid(format!("root password on standard input {rule}")))?;
    let config = ctx.config;
    let vmdir = VmDir::new(config, vm);
    for d in [config.vms_dir(), config.locks_dir(), vmdir.dir.clone()] {
        crate::fsutil::ensure_dir(&d, 0o700).map_err(|e| Error::failed(format!("cannot create {}: {e}", d.display())))?;
    }
    let _lock = crate::lock::try_lock(&config.vm_lock(vm))?;
    crate::lock::remove_leftovers(&vmdir.dir, &[JOB_PREFIX]).map_err(|e| Error::failed(format!("cannot clear leftovers in {}: {e}", vmdir.dir.display())))?;
    if gnt.install_job()?.is_some_and(|j| j.active()) {
        return Err(Error::busy(format!("an install job for {} is already in Ganeti's queue; see `status {vm}`", gnt.name)));
    }
    let existing = gnt.instance()?;
    if let Some(i) = &existing {
        if ours(gnt.c, i).is_none() {
            return Err(Error::failed(format!(
                "Ganeti instance {} exists with OS {}, not {}+TEMPLATE: it is not ours to reinstall; ask an admin",
                gnt.name, i.os, gnt.c.os.0
            )));
        }
        if i.running {
            let t = config.timeouts.stop_s.to_string();
            gnt.run(gnt.c.gnt_instance.path(), &["shutdown", "--timeout", &t, &gnt.name], gnt.c.command() + config.timeouts.stop())?;
        }
    }
    let ops = opcodes(gnt, m, tname, &root_hash, existing.is_some(), !no_start, &ctx.caller.to_string());
    let (job, why) = submit(gnt, &vmdir, &ops)?;
    let done = gnt.install_job()?.filter(|j| j.id == job);
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
        human: format!("{vm}: Ganeti instance {} {action} from template {tname} (job {job}){}\n", gnt.name, if running { ", started" } else { "" }),
        json: obj([
            ("vm", Value::from(vm.as_str())),
            ("state", Value::from("installed")),
            ("template", Value::from(tname.as_str())),
            ("cluster", Value::from("ganeti")),
            ("instance", Value::from(gnt.name.as_str())),
            ("action", Value::from(action)),
            ("job", Value::from(job)),
            ("running", Value::from(running)),
        ]),
    })
}

/// The job's opcodes, as `gnt-debug submit-job` reads them.
#[allow(clippy::too_many_arguments)]
fn opcodes(gnt: &Gnt, m: &Machine, t: &TemplateName, hash: &CryptHash, reinstall: bool, start: bool, caller: &str) -> Value {
    let c = gnt.c;
    let n = &m.network;
    let ns: Vec<String> = n.nameservers().iter().map(|a| a.to_string()).collect();
    let osparams = json!({"netmask": n.netmask().to_string(), "gateway": n.gateway().to_string(), "nameservers": ns.join(" ")});
    let secret = json!({"root_hash": hash.expose()});
    let os_type = format!("{}+{t}", c.os.0);
    let comment = format!("guest-installer: install {} for {caller}", m.name);
    let mut ops = Vec::new();
    if reinstall {
        ops.push(json!({"OP_ID": "OP_INSTANCE_REINSTALL", "instance_name": gnt.name, "os_type": os_type,
            "osparams": osparams, "osparams_secret": secret, "comment": comment}));
        if start {
            ops.push(json!({"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": gnt.name, "comment": comment}));
        }
    } else {
        let mut op = json!({"OP_ID": "OP_INSTANCE_CREATE", "instance_name": gnt.name, "mode": "create",
            "disk_template": c.disk_template.as_str(), "disks": [{"size": c.disk_mib}],
            "nics": [{"ip": n.ip().to_string(), "mac": m.mac.to_string()}],
            "os_type": os_type, "osparams": osparams, "osparams_secret": secret,
            "beparams": {"maxmem": m.memory_mib.get(), "minmem": m.memory_mib.get(), "vcpus": m.vcpus.get()},
            "start": start, "ip_check": false, "name_check": false, "wait_for_sync": false,
            "tags": [format!("guest-installer:{}", m.name)], "comment": comment});
        let o = op.as_object_mut().expect("an object");
        match (&c.node, &c.iallocator) {
            (Some(node), _) => {
                o.insert("pnode".into(), Value::from(node.as_str()));
                if let Some(s) = &c.secondary_node {
                    o.insert("snode".into(), Value::from(s.as_str()));
                }
            }
            (None, Some(ia)) => {
                o.insert("iallocator".into(), Value::from(ia.0.as_str()));
            }
            (None, None) => {}
        }
        ops.push(op);
    }
    Value::Array(ops)
}

const JOB_PREFIX: &str = ".tmp-ganeti-job-";

/// Writes the job to a 0600 file in the machine's root-only directory,
/// submits it and waits for it; the file is gone when this returns.
/// Returns the job's id and, if it failed, what gnt-debug said of it.
fn submit(gnt: &Gnt, vmdir: &VmDir, ops: &Value) -> Result<(u64, Option<String>)> {
    let mut f = tempfile::Builder::new()
        .prefix(JOB_PREFIX)
        .suffix(".json")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(&vmdir.dir)
        .map_err(|e| Error::failed(format!("cannot write the job file in {}: {e}", vmdir.dir.display())))?;
    f.write_all(ops.to_string().as_bytes()).and_then(|_| f.as_file().sync_all()).map_err(|e| Error::failed(format!("cannot write the job file: {e}")))?;
    let path = f.path().to_string_lossy().into_owned();
    let r = exec::run(gnt.c.gnt_debug.path(), &["submit-job", &path], Duration::from_secs(gnt.c.job_s));
    drop(f);
    let o = r.map_err(gnt_error)?;
    // gnt-debug exits 0 whatever became of the job: its id, then ask.
    let id = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Waiting for job ")?.split(' ').next()?.parse().ok())
        .ok_or_else(|| Error::failed(format!("gnt-debug submit-job did not say which job it submitted: {}", o.stdout.lines().last().unwrap_or(""))))?;
    // "Job N for file F/0 has failed: REASON" (our scripts print no secret).
    let why = o.stderr.split_once(" has failed: ").map(|(_, r)| {
        let r: String = r.split_whitespace().collect::<Vec<_>>().join(" ");
        r.chars().take(400).collect()
    });
    Ok((id, why))
}

fn status(gnt: &Gnt, m: &Machine) -> Result<Outcome> {
    let inst = gnt.instance()?;
    let job = gnt.install_job()?;
    let state = match (&inst, &job) {
        (_, Some(j)) if j.active() => "installing",
        (_, Some(j)) if j.status == "error" => "failed",
        (_, Some(j)) if j.status == "canceled" => "cancelled",
        (Some(_), _) => "installed",
        (None, _) => "none",
    };
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
        return Err(Error::busy(format!("Ganeti job {} is already running the install of {vm}; Ganeti cannot cancel it now", job.id)));
    }
    let id = job.id.to_string();
    gnt.run(gnt.c.gnt_job.path(), &["cancel", &id], gnt.c.command())?;
    Ok(Outcome {
        human: format!("{vm}: install job {id} cancelled\n"),
        json: obj([("vm", Value::from(vm.as_str())), ("state", Value::from("cancelled")), ("job", Value::from(job.id)), ("cluster", Value::from("ganeti"))]),
    })
}

fn power(ctx: &Ctx, gnt: &Gnt, m: &Machine, what: &str) -> Result<Outcome> {
    let vm = &m.name;
    let _lock = crate::lock::try_lock(&ctx.config.vm_lock(vm))?;
    if gnt.install_job()?.is_some_and(|j| j.active()) {
        return Err(Error::busy(format!("machine {vm} is being installed; wait until `status {vm}` says installed, or cancel it")));
    }
    let Some(inst) = gnt.instance()? else {
        return Err(Error::invalid(format!("nothing is installed on machine {vm}; install it first")));
    };
    let stop = ctx.config.timeouts.stop_s.to_string();
    let limit = gnt.c.command() + ctx.config.timeouts.stop();
    let (args, action, running): (Vec<&str>, &str, bool) = match what {
        "start" if inst.running => return Err(Error::busy(format!("machine {vm} is already running"))),
        "start" => (vec!["startup", &gnt.name], "start", true),
        "reboot" if !inst.running => return Err(Error::invalid(format!("machine {vm} is not running; `start {vm}` starts it"))),
        "reboot" => (vec!["reboot", &gnt.name], "reboot", true),
        // Ganeti waits for a clean shutdown up to the timeout, then stops
        // the instance outright; --force gives it no time.
        "stop" => (vec!["shutdown", "--timeout", &stop, &gnt.name], "stop", false),
        _ => (vec!["shutdown", "--timeout", "0", &gnt.name], "stop", false),
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
            ("forced", Value::from(what == "stop-force")),
            ("cluster", Value::from("ganeti")),
            ("instance", Value::from(gnt.name.as_str())),
        ]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_install_job_of_the_instance_is_found() {
        let text = "3|success|OS_DIAGNOSE|[1, 0]|[2, 0]\n\
                    7|success|INSTANCE_CREATE(web1.example.org)|[10, 5]|[20, 1]\n\
                    8|error|INSTANCE_REINSTALL(web10.example.org)|[30, 0]|[31, 0]\n\
                    9|running|INSTANCE_REINSTALL(web1.example.org),INSTANCE_STARTUP(web1.example.org)|[40, 0]|None\n";
        let j = latest_install_job(text, "web1.example.org").unwrap();
        assert_eq!((j.id, j.status.as_str(), j.received, j.ended), (9, "running", Some(40), None));
        assert!(latest_install_job(text, "web2.example.org").is_none());
    }

    #[test]
    fn cluster_config_needs_exactly_one_placement() {
        let base = "engine = \"ganeti\"\ndisk_template = \"drbd\"\n";
        let c: ClusterConfig = toml::from_str(&format!("{base}node = \"node1.example.org\"\n")).unwrap();
        assert!(c.check().is_ok());
        let c: ClusterConfig = toml::from_str(base).unwrap();
        assert!(c.check().is_err());
        let c: ClusterConfig = toml::from_str(&format!("{base}node = \"n1.x\"\niallocator = \"hail\"\n")).unwrap();
        assert!(c.check().is_err());
        assert!(toml::from_str::<ClusterConfig>(&format!("{base}iallocator = \"hail; rm\"\n")).is_err());
        assert!(toml::from_str::<ClusterConfig>("engine = \"openstack\"\ndisk_template = \"drbd\"\n").is_err());
    }
}
