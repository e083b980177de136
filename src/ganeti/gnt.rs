//! The gnt-* programs, by argv and with time limits: what an instance
//! and its latest install job look like, and a job submitted from a
//! mode-0600 opcode file (`gnt-debug submit-job`), so that the secret OS
//! parameter it carries is in no program's arguments.

use super::cluster_config::ClusterConfig;
use crate::error::{Error, Result};
use crate::exec::{self, ExecError};
use crate::registry::Machine;
use crate::rootlogin::RootLogin;
use crate::state::VmDir;
use crate::steps::Steps;
use crate::types::{Ipv4Static, TemplateName};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

pub(super) fn gnt_error(e: ExecError) -> Error {
    match e {
        ExecError::TimedOut { .. } => Error::failed(format!("{e}; the Ganeti job may still run: see `status`")),
        e => Error::failed(e.to_string()),
    }
}

/// The instance as `gnt-instance list` shows it.
#[derive(Debug)]
pub(super) struct Instance {
    pub os: String,
    pub running: bool,
    pub status: String,
    /// Its tags (ours is `guest-installer:VM`).
    pub tags: Vec<String>,
    /// NIC 0's address (`None`: no address, DHCP) and MAC, which a
    /// reinstall keeps.
    pub nic_ip: Option<String>,
    pub nic_mac: String,
}

/// One install job (create or reinstall) of an instance.
#[derive(Debug)]
pub(super) struct Job {
    pub id: u64,
    pub status: String,
    pub received: Option<u64>,
    pub ended: Option<u64>,
}

impl Job {
    pub fn pending(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "waiting" | "canceling")
    }
    pub fn active(&self) -> bool {
        self.pending() || self.status == "running"
    }
}

pub(super) struct Gnt<'a> {
    pub c: &'a ClusterConfig,
    pub name: String,
}

/// The fields `gnt-instance list` gives for an [`Instance`], in order.
const INSTANCE_FIELDS: &str = "name,os,oper_state,status,tags,nic.ip/0,nic.mac/0";

/// One `gnt-instance list` line of [`INSTANCE_FIELDS`]: its name and what
/// it says of the instance.
fn parse_instance(line: &str) -> Option<(&str, Instance)> {
    let f: Vec<&str> = line.split('|').collect();
    if f.len() != 7 {
        return None;
    }
    let tags = f[4].split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect();
    // Ganeti shows a NIC without an address as "-" (or nothing).
    let nic_ip = Some(f[5]).filter(|ip| !ip.is_empty() && *ip != "-").map(str::to_owned);
    Some((f[0], Instance { os: f[1].to_owned(), running: f[2] == "Y", status: f[3].to_owned(), tags, nic_ip, nic_mac: f[6].to_owned() }))
}

/// The instances Ganeti's query `filter` selects, by name.
fn list_instances(c: &ClusterConfig, filter: &str) -> Result<BTreeMap<String, Instance>> {
    let o = exec::run(c.gnt_instance.path(), &["list", "--no-headers", "--separator=|", "-o", INSTANCE_FIELDS, "-F", filter], c.command()).map_err(gnt_error)?;
    o.stdout
        .lines()
        .map(|l| parse_instance(l).map(|(n, i)| (n.to_owned(), i)).ok_or_else(|| Error::failed("gnt-instance list gave an unexpected line")))
        .collect()
}

/// Every instance of our OS definition (any variant), by name: one
/// `gnt-instance list` for `list`, however many machines it shows.
pub(super) fn our_instances(c: &ClusterConfig) -> Result<BTreeMap<String, Instance>> {
    // The OS name is [a-z0-9_-]: nothing in it is special to the regex.
    list_instances(c, &format!("os =~ m/^{}\\+/", c.os.0))
}

/// The tag our create gives machine `vm`'s instance: with our OS, what
/// makes an instance that machine's.
pub(super) fn machine_tag(vm: &impl std::fmt::Display) -> String {
    format!("guest-installer:{vm}")
}

/// `gnt-job list` of every job in the queue (`id|status|summary|received|end`),
/// read from a scratch file and bounded: a long queue is not held in a pipe.
pub(super) fn job_list(c: &ClusterConfig) -> Result<String> {
    let out = tempfile::tempfile().map_err(|e| Error::failed(format!("cannot make a scratch file: {e}")))?;
    let mut copy = out.try_clone().map_err(|e| Error::failed(format!("cannot make a scratch file: {e}")))?;
    exec::run_with_stdout(c.gnt_job.path(), &["list", "--no-headers", "--separator=|", "-o", "id,status,summary,received_ts,end_ts"], c.command(), out)
        .map_err(gnt_error)?;
    let mut text = String::new();
    use std::io::Seek;
    copy.seek(std::io::SeekFrom::Start(0)).and_then(|_| copy.take(16 << 20).read_to_string(&mut text)).map_err(|e| Error::failed(format!("cannot read gnt-job's output: {e}")))?;
    Ok(text)
}

impl Gnt<'_> {
    pub fn instance(&self) -> Result<Option<Instance>> {
        // `name == "N"` becomes a lookup that fails for an unknown name;
        // a regular expression (of a name that is only [a-z0-9.-]) does not.
        let filter = format!("name =~ m/^{}$/", self.name.replace('.', "\\."));
        Ok(list_instances(self.c, &filter)?.remove(&self.name))
    }

    /// The latest create or reinstall job of the instance still in the queue.
    pub fn install_job(&self) -> Result<Option<Job>> {
        Ok(latest_install_job(&job_list(self.c)?, &self.name))
    }

    pub fn run(&self, program: &Path, args: &[&str], limit: Duration) -> Result<exec::Output> {
        exec::run(program, args, limit).map_err(gnt_error)
    }
}

fn ts(field: &str) -> Option<u64> {
    field.trim_start_matches('[').split(',').next()?.trim().parse().ok()
}

/// From `gnt-job list` lines `id|status|summary|received|end`.
pub(super) fn latest_install_job(text: &str, name: &str) -> Option<Job> {
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

/// The size of disk 0 of a new instance: the machine's (`machine add
/// size=` in cluster mode), else the cluster's default.
pub(super) fn disk_mib(c: &super::cluster::ClusterConfig, m: &Machine) -> u64 {
    match m.storage {
        crate::registry::Storage::Instance { size } => size.mib(),
        crate::registry::Storage::Volume { .. } => c.disk_mib,
    }
}

/// The job's opcodes, as `gnt-debug submit-job` reads them.
/// `v4` is the machine's static IPv4 network; `None` is DHCP: a NIC with
/// no address and no address parameters (the OS definition then has the
/// guest ask the site's DHCP server, which knows the MAC).
#[allow(clippy::too_many_arguments)]
pub(super) fn opcodes(gnt: &Gnt, m: &Machine, v4: Option<&Ipv4Static>, t: &TemplateName, root: &RootLogin, reinstall: bool, start: bool, caller: &str) -> Value {
    let c = gnt.c;
    let mut osparams = json!({});
    let mut nic = json!({"mac": m.mac.to_string()});
    if let Some(v4) = v4 {
        let ns: Vec<String> = m.network.nameservers().iter().map(|a| a.to_string()).collect();
        osparams = json!({"netmask": v4.netmask().to_string(), "gateway": v4.gateway().to_string(), "nameservers": ns.join(" ")});
        nic["ip"] = Value::from(v4.ip().to_string());
    }
    // Public keys are public: a plain OS parameter, always passed (see
    // `join_keys`). Without a password the secret parameters are empty
    // (the OS definition then locks root).
    osparams["ssh_keys"] = Value::from(super::env::join_keys(root.keys()));
    let secret = match root.password().hash() {
        Some(hash) => json!({"root_hash": hash.expose()}),
        None => json!({}),
    };
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
            "disk_template": c.disk_template.as_str(), "disks": [{"size": disk_mib(c, m)}],
            "nics": [nic],
            "os_type": os_type, "osparams": osparams, "osparams_secret": secret,
            "beparams": {"maxmem": m.memory_mib.get(), "minmem": m.memory_mib.get(), "vcpus": m.vcpus.get()},
            "start": start, "ip_check": false, "name_check": false,
            // A DRBD instance is installed once its mirror is in sync:
            // until then a failed primary loses the clone.
            "wait_for_sync": c.disk_template == super::cluster_config::DiskTemplate::Drbd,
            "tags": [machine_tag(&m.name)], "comment": comment});
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

pub(super) const JOB_PREFIX: &str = ".tmp-ganeti-job-";

/// Writes the job to a 0600 file in the machine's root-only directory,
/// submits it and waits for it; the file is gone when this returns.
/// Returns the job's id and, if it failed, what gnt-debug said of it.
pub(super) fn submit(gnt: &Gnt, vmdir: &VmDir, ops: &Value) -> Result<(u64, Option<String>)> {
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
    // "Job N for file F/0 has failed: REASON" (our scripts print no
    // secret, but the reason quotes their log: cleaned like a console line).
    let why = o.stderr.split_once(" has failed: ").map(|(_, r)| crate::console::clean_line(r));
    Ok((id, why))
}

/// How often the job is looked at while a request waits for it.
const JOB_POLL: Duration = Duration::from_secs(2);

/// What has been reported of the instance's install jobs newer than
/// `after` (the latest one before ours was submitted): each change of job
/// or status.
pub(super) struct JobWatch {
    pub after: Option<u64>,
    pub seen: Option<(u64, String)>,
}

impl JobWatch {
    pub fn note(&mut self, j: &Job, steps: &Steps) {
        if self.after.is_some_and(|a| j.id <= a) || self.seen.as_ref().is_some_and(|(id, st)| *id == j.id && *st == j.status) {
            return;
        }
        steps.step(&format!("Ganeti job {}: {}", j.id, j.status));
        self.seen = Some((j.id, j.status.clone()));
    }
}

/// Runs `wait` (which waits for the job) while another thread notes the
/// instance's install job every [`JOB_POLL`]. A look that fails is only a
/// line less: the job's outcome is what `wait` returns.
pub(super) fn watching<T>(gnt: &Gnt, watch: &mut JobWatch, steps: &Steps, wait: impl FnOnce() -> T) -> T {
    let (done, stop) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        // `wait` stays on this thread: the programs it runs die with the
        // thread that started them (exec's parent-death signal).
        let poller = s.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(JOB_POLL) {
                if let Ok(Some(j)) = gnt.install_job() {
                    watch.note(&j, steps);
                }
            }
        });
        let r = wait();
        drop(done);
        let _ = poller.join();
        r
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
    fn each_change_of_a_newer_job_is_reported_once() {
        let steps = Steps::kept();
        let mut w = JobWatch { after: Some(8), seen: None };
        let job = |id, status: &str| Job { id, status: status.into(), received: None, ended: None };
        for j in [job(8, "success"), job(9, "queued"), job(9, "queued"), job(9, "running"), job(9, "running"), job(9, "success")] {
            w.note(&j, &steps);
        }
        let texts: Vec<String> = steps.lines().iter().map(|l| l.split("] ").nth(1).unwrap().to_owned()).collect();
        assert_eq!(texts, ["Ganeti job 9: queued", "Ganeti job 9: running", "Ganeti job 9: success"]);
    }
}
