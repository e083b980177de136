//! Two Ganeti nodes on this one machine, for real: each node is a network,
//! mount and UTS namespace (a `sleep` holds them) plugged into a host
//! bridge by a veth pair, with its own `gnt0` bridge and TEST-NET-2
//! address, its own /run (tmpfs), /var/lib/ganeti, /var/log/ganeti,
//! /etc/ganeti, root's SSH key and sshd, and a private /etc/hosts (the
//! host's is never edited). /srv (the OS definition, the file and
//! shared-file storage) is one host directory bound on both nodes. Each
//! node is also a guest-installer host of its own: its own state dir and
//! config, bound onto the same two paths on both nodes (the OS definition
//! names them once), with one shared directory bound onto
//! `STATE/templates` on both. Ganeti runs its real `kvm` hypervisor (qemu
//! under TCG here) on `sharedfile` disks.
//!
//! The recipe is /work/shared/notes/ganeti.md, "Two nodes and the kvm
//! hypervisor". Everything is undone on drop (instances, node, cluster,
//! daemons, sshd and the namespace holders by pid, veths, bridge; the
//! bind mounts die with their namespaces), also when a step failed.
#![allow(dead_code)]

use crate::common::Out;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CLUSTER: &str = "cluster.ganeti.test";
pub const CLUSTER_IP: &str = "198.51.100.20";
/// The host bridge the nodes' veths are plugged into, and the veths'
/// host ends (`gikv1`, `gikv2`).
pub const HOST_BRIDGE: &str = "gikbr0";
const VETH: &str = "gikv";
/// The bridge inside every node (the cluster's NIC link).
pub const NODE_BRIDGE: &str = "gnt0";
pub const OS_DIR: &str = "/srv/ganeti/os/guest-installer";
pub const FILE_STORAGE: &str = "/srv/ganeti/file-storage";
pub const SHARED_STORAGE: &str = "/srv/ganeti/shared-file-storage";
/// The host's Ganeti configuration: if it exists, a cluster is configured
/// on this machine and we stay away.
pub const HOST_CONFIG_DATA: &str = "/var/lib/ganeti/config.data";
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
const DAEMON_UTIL: &str = "/usr/lib/ganeti/daemon-util";
/// Any one gnt-* command.
pub const GNT_BOUND: Duration = Duration::from_secs(600);

/// The ipolicy of the notes: disks under 1 GiB allowed, one CPU, 64 MiB.
const IPOLICY_BOUNDS: &str =
    "min:cpu-count=1,disk-count=1,disk-size=32,memory-size=64,nic-count=0,spindle-use=1/max:cpu-count=8,disk-count=16,disk-size=1048576,memory-size=32768,nic-count=8,spindle-use=12";
const IPOLICY_STD: &str = "cpu-count=1,disk-count=1,disk-size=64,memory-size=128,nic-count=1,spindle-use=1";
/// Ganeti's kvm hypervisor with qemu in TCG (no /dev/kvm here), no
/// kernel of its own (the disk's boot loader boots), the serial console.
const KVM_PARAMS: &str = "kvm:kvm_flag=disabled,kvm_path=/usr/bin/qemu-system-x86_64,kernel_path=,initrd_path=,serial_console=true,vnc_bind_address=";

/// Runs `c` for at most `limit`, killing it if it overruns; never panics
/// (teardown uses it). A killed command's code is -1, and its stderr says
/// so.
pub fn run_for(c: &mut Command, stdin: &[u8], limit: Duration) -> Out {
    match crate::common::realm::run_watched(c, stdin, limit) {
        Ok((o, killed)) => {
            let mut out = Out { code: o.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&o.stdout).into_owned(), stderr: String::from_utf8_lossy(&o.stderr).into_owned(), action: None };
            if killed {
                out.code = -1;
                out.stderr.push_str(&format!("\n[killed after {limit:?}: {c:?}]"));
            }
            out
        }
        Err(e) => Out { code: -2, stdout: String::new(), stderr: format!("{c:?}: {e}"), action: None },
    }
}

fn host(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env_clear().env("PATH", PATH).env("LC_ALL", "C");
    c
}

fn host_must(program: &str, args: &[&str]) -> Out {
    let o = run_for(&mut host(program, args), b"", Duration::from_secs(60));
    assert_eq!(o.code, 0, "{program} {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn ns_of(pid: u32, kind: &str) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purposes.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')))
}

/// One node: the namespaces' holder and the node's sshd, both our
/// children (killed by pid).
pub struct Node {
    pub n: u8,
    /// `nodeN.ganeti.test`
    pub name: String,
    /// `198.51.100.1N`
    pub ip: String,
    /// The node's own directories on the host.
    pub dir: PathBuf,
    holder: Child,
    sshd: Option<Child>,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `program args` inside the node (its network, mount and UTS
    /// namespaces), with a clean environment.
    pub fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid().to_string(), "-n", "-m", "-u", "--"]).arg(program).args(args);
        c.env_clear().env("PATH", PATH).env("LC_ALL", "C");
        c
    }

    /// `args[0] args[1..]` inside the node, bounded; never panics.
    pub fn run(&self, args: &[&str]) -> Out {
        run_for(&mut self.cmd(args[0], &args[1..]), b"", GNT_BOUND)
    }

    /// The same, which must succeed.
    pub fn must(&self, args: &[&str]) -> Out {
        let o = self.run(args);
        assert_eq!(o.code, 0, "{} {args:?} failed:\n{}\n{}", self.name, o.stdout, o.stderr);
        o
    }

    /// A path as the node sees it, from the host (through the holder's
    /// root, in the node's mount namespace).
    pub fn path(&self, p: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{p}", self.pid()))
    }

    /// Processes in this node's mount namespace other than the holder.
    fn processes(&self) -> Vec<u32> {
        let Some(mine) = ns_of(self.pid(), "mnt") else { return Vec::new() };
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if pid != self.pid() && ns_of(pid, "mnt").as_ref() == Some(&mine) && alive(pid) {
                out.push(pid);
            }
        }
        out
    }
}

/// Where the guest-installer side of each node lives: the same paths on
/// both nodes, bound per node.
pub struct Layout<'a> {
    /// The config file the OS definition names (each node binds its own
    /// onto it).
    pub config: &'a Path,
    /// The config's `state_dir` (each node binds its own onto it).
    pub state: &'a Path,
    /// The text of each node's config.
    pub config_text: &'a str,
}

/// The two nodes, the host bridge, and the cluster on them.
pub struct Cluster {
    pub base: tempfile::TempDir,
    pub nodes: Vec<Node>,
    /// The directory bound onto /srv on both nodes.
    pub srv: PathBuf,
    /// The directory bound onto `STATE/templates` on both nodes.
    pub templates: PathBuf,
    bridge: bool,
    veths: Vec<String>,
    init: bool,
    joined: Vec<String>,
}

impl Cluster {
    /// The nodes, up to their sshd; no cluster yet.
    pub fn up(layout: &Layout) -> Cluster {
        assert!(!Path::new(HOST_CONFIG_DATA).exists(), "a Ganeti cluster is configured on this machine ({HOST_CONFIG_DATA}); this test stays away from it");
        for l in [HOST_BRIDGE.to_owned(), format!("{VETH}1"), format!("{VETH}2")] {
            assert!(!link_exists(&l), "an interface {l} exists already (a previous run's?)");
        }
        for p in ["/var/lib/ganeti", "/var/log/ganeti", "/etc/ganeti", "/srv", "/root", "/etc/hosts"] {
            assert!(Path::new(p).exists(), "{p} is missing: the nodes bind their own onto it");
        }
        let base = tempfile::Builder::new().prefix("gi-gkvm-").tempdir().unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let shared = base.path().join("shared");
        let srv = shared.join("srv");
        for d in [OS_DIR, FILE_STORAGE, SHARED_STORAGE] {
            fs::create_dir_all(srv.join(d.trim_start_matches("/srv/"))).unwrap();
        }
        let templates = shared.join("templates");
        fs::create_dir_all(&templates).unwrap();
        fs::set_permissions(&templates, fs::Permissions::from_mode(0o755)).unwrap();
        let hosts = shared.join("hosts");
        fs::write(
            &hosts,
            format!(
                "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n\
                 198.51.100.11 node1.ganeti.test node1\n198.51.100.12 node2.ganeti.test node2\n\
                 {CLUSTER_IP} {CLUSTER} cluster\n"
            ),
        )
        .unwrap();
        fs::set_permissions(&hosts, fs::Permissions::from_mode(0o644)).unwrap();

        let mut c = Cluster { base, nodes: Vec::new(), srv, templates, bridge: false, veths: Vec::new(), init: false, joined: Vec::new() };
        // From here on, drop undoes whatever was done.
        host_must("ip", &["link", "add", HOST_BRIDGE, "type", "bridge"]);
        c.bridge = true;
        host_must("ip", &["link", "set", HOST_BRIDGE, "up"]);

        // Each node's own directories, and root's SSH key.
        let mut pubkeys = String::new();
        for n in [1u8, 2] {
            let dir = c.base.path().join(format!("node{n}"));
            for d in ["varlib", "varlog", "root/.ssh", "state/templates"] {
                fs::create_dir_all(dir.join(d)).unwrap();
            }
            for (d, mode) in [("root", 0o700), ("root/.ssh", 0o700), ("state", 0o700), ("varlib", 0o755), ("varlog", 0o750)] {
                fs::set_permissions(dir.join(d), fs::Permissions::from_mode(mode)).unwrap();
            }
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            // A copy of the host's /etc/ganeti, and the storage paths.
            host_must("cp", &["-a", "/etc/ganeti", dir.join("etc").to_str().unwrap()]);
            fs::write(dir.join("etc/file-storage-paths"), format!("{FILE_STORAGE}\n{SHARED_STORAGE}\n")).unwrap();
            let key = dir.join("root/.ssh/id_ed25519");
            host_must("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", &format!("root@node{n}.ganeti.test"), "-f", key.to_str().unwrap()]);
            pubkeys.push_str(&fs::read_to_string(key.with_extension("pub")).unwrap());
            let config = dir.join("config.toml");
            fs::write(&config, format!("# guest-installer's config on node{n}.ganeti.test\n{}", layout.config_text)).unwrap();
            fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        }
        for n in [1u8, 2] {
            let ak = c.base.path().join(format!("node{n}/root/.ssh/authorized_keys"));
            fs::write(&ak, &pubkeys).unwrap();
            fs::set_permissions(&ak, fs::Permissions::from_mode(0o600)).unwrap();
        }

        for n in [1u8, 2] {
            let node = c.start_node(n, layout);
            c.nodes.push(node);
            c.plug(n);
            c.start_sshd(n);
        }
        c
    }

    /// The namespaces, held by a `sleep`, with the node's mounts.
    fn start_node(&mut self, n: u8, layout: &Layout) -> Node {
        let dir = self.base.path().join(format!("node{n}"));
        let holder = host("unshare", &["--net", "--mount", "--uts", "--propagation", "private", "sleep", "infinity"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let node = Node { n, name: format!("node{n}.ganeti.test"), ip: format!("198.51.100.1{n}"), dir: dir.clone(), holder, sshd: None };
        // Until the caller has it, a failed step below kills the holder.
        let guard = HolderGuard(Some(node));
        // unshare has made the namespaces once it runs sleep in them.
        let pid = guard.node().pid();
        let t = Instant::now();
        while ns_of(pid, "mnt") == ns_of(std::process::id(), "mnt") || fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim() != "sleep" {
            assert!(t.elapsed() < Duration::from_secs(10), "the namespace holder of node{n} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let node = guard.node();
        let d = |p: &str| dir.join(p).to_str().unwrap().to_owned();
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        node.must(&["hostname", &node.name]);
        node.must(&["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"]);
        node.must(&["mkdir", "-p", "/run/lock", "/run/sshd", "/run/ganeti"]);
        node.must(&["chmod", "1777", "/run/lock"]);
        for (from, onto) in [
            (d("varlib"), "/var/lib/ganeti".to_owned()),
            (d("varlog"), "/var/log/ganeti".to_owned()),
            (d("etc"), "/etc/ganeti".to_owned()),
            (d("root"), "/root".to_owned()),
            (s(&self.srv), "/srv".to_owned()),
            (s(&self.base.path().join("shared/hosts")), "/etc/hosts".to_owned()),
            (d("state"), s(layout.state)),
            (s(&self.templates), s(&layout.state.join("templates"))),
            (d("config.toml"), s(layout.config)),
        ] {
            node.must(&["mount", "--bind", &from, &onto]);
        }
        // The node's own view of its network devices ("Missing bridges
        // gnt0" otherwise).
        node.must(&["mount", "-t", "sysfs", "sysfs", "/sys"]);
        guard.take()
    }

    /// The node's veth to the host bridge, its own bridge and address.
    fn plug(&mut self, n: u8) {
        let veth = format!("{VETH}{n}");
        let pid = self.node(n).pid().to_string();
        host_must("ip", &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pid]);
        self.veths.push(veth.clone());
        host_must("ip", &["link", "set", &veth, "master", HOST_BRIDGE, "up"]);
        let node = self.node(n);
        let cidr = format!("{}/24", node.ip);
        for args in [
            &["ip", "link", "set", "lo", "up"][..],
            &["ip", "link", "add", NODE_BRIDGE, "type", "bridge"],
            &["ip", "link", "set", "eth0", "master", NODE_BRIDGE],
            &["ip", "link", "set", "eth0", "up"],
            &["ip", "link", "set", NODE_BRIDGE, "up"],
            &["ip", "addr", "add", &cidr, "dev", NODE_BRIDGE],
            &["/usr/lib/ganeti/ensure-dirs"],
        ] {
            node.must(args);
        }
    }

    /// The node's sshd (in the foreground, our child): `gnt-node add` and
    /// `gnt-instance console` ssh to root@node.
    fn start_sshd(&mut self, n: u8) {
        let node = self.node(n);
        let log = fs::File::create(node.dir.join("sshd.log")).unwrap();
        let listen = format!("ListenAddress={}", node.ip);
        let pidfile = format!("PidFile=/run/sshd-{n}.pid");
        let child = node.cmd("/usr/sbin/sshd", &["-D", "-e", "-o", &listen, "-o", &pidfile]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let ip = node.ip.clone();
        self.nodes[usize::from(n) - 1].sshd = Some(child);
        let node = self.node(n);
        let t = Instant::now();
        loop {
            let o = node.run(&["ss", "-Hltn", &format!("src {ip}:22")]);
            if o.code == 0 && o.stdout.contains(&format!("{ip}:22")) {
                break;
            }
            let log = fs::read_to_string(node.dir.join("sshd.log")).unwrap_or_default();
            assert!(t.elapsed() < Duration::from_secs(30), "sshd on {} is not listening:\n{log}", node.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn node(&self, n: u8) -> &Node {
        &self.nodes[usize::from(n) - 1]
    }

    /// A gnt-* command on the master (node 1), bounded; never panics.
    pub fn gnt(&self, args: &[&str]) -> Out {
        self.node(1).run(args)
    }

    /// The same, which must succeed.
    pub fn must(&self, args: &[&str]) -> Out {
        self.node(1).must(args)
    }

    /// `gnt-cluster init` on node 1: the kvm hypervisor, sharedfile (and
    /// file) disks in the shared /srv.
    pub fn init(&mut self) {
        self.init = true;
        let file_dir = format!("--file-storage-dir={FILE_STORAGE}");
        let shared_dir = format!("--shared-file-storage-dir={SHARED_STORAGE}");
        let nic = format!("--nic-parameters=mode=bridged,link={NODE_BRIDGE}");
        let netdev = format!("--master-netdev={NODE_BRIDGE}");
        self.must(&[
            "gnt-cluster",
            "init",
            "--enabled-hypervisors=kvm",
            "-H",
            KVM_PARAMS,
            "--enabled-disk-templates=sharedfile,file",
            &file_dir,
            &shared_dir,
            &nic,
            &netdev,
            "--master-netmask=24",
            "--no-etc-hosts",
            "--no-ssh-init",
            "--ipolicy-bounds-specs",
            IPOLICY_BOUNDS,
            "--ipolicy-std-specs",
            IPOLICY_STD,
            CLUSTER,
        ]);
    }

    /// `gnt-node add nodeN` (over SSH from the master).
    pub fn add_node(&mut self, n: u8) {
        let name = self.node(n).name.clone();
        self.joined.push(name.clone());
        self.must(&["gnt-node", "add", &name]);
    }

    /// The instances Ganeti knows.
    pub fn instances(&self) -> Vec<String> {
        self.must(&["gnt-instance", "list", "--no-headers", "-o", "name"]).stdout.lines().map(str::to_owned).collect()
    }

    /// The nodes' mount and network namespaces (`mnt:[N]`, `net:[N]`):
    /// no process may be left in them after teardown.
    pub fn namespaces(&self) -> Vec<PathBuf> {
        self.nodes.iter().flat_map(|n| [ns_of(n.pid(), "mnt"), ns_of(n.pid(), "net")]).flatten().collect()
    }

    /// The pids that must be gone after teardown (holders, sshds).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().flat_map(|n| [Some(n.holder.id()), n.sshd.as_ref().map(Child::id)]).flatten().collect()
    }
}

/// The processes (pid, name) in any of `namespaces`.
pub fn processes_in(namespaces: &[PathBuf]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if ["mnt", "net"].iter().any(|k| ns_of(pid, k).is_some_and(|n| namespaces.contains(&n))) && alive(pid) {
            out.push((pid, fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned()));
        }
    }
    out
}

/// Kills a node's holder if its setup fails before the node is pushed.
struct HolderGuard(Option<Node>);
impl HolderGuard {
    fn node(&self) -> &Node {
        self.0.as_ref().unwrap()
    }
    fn take(mut self) -> Node {
        self.0.take().unwrap()
    }
}
impl Drop for HolderGuard {
    fn drop(&mut self) {
        if let Some(mut n) = self.0.take() {
            let _ = n.holder.kill();
            let _ = n.holder.wait();
        }
    }
}

fn kill_child(c: &mut Child, problems: &mut Vec<String>, what: &str) {
    if let Ok(Some(_)) = c.try_wait() {
        return;
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    if c.wait().is_err() {
        problems.push(format!("{what} (pid {}) could not be reaped", c.id()));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        let bound = Duration::from_secs(300);
        if self.init && !self.nodes.is_empty() {
            let master = &self.nodes[0];
            let list = master.run(&["gnt-instance", "list", "--no-headers", "-o", "name"]);
            for i in list.stdout.lines() {
                let o = run_for(&mut master.cmd("gnt-instance", &["remove", "-f", "--ignore-failures", "--shutdown-timeout=0", i]), b"", bound);
                if o.code != 0 {
                    problems.push(format!("gnt-instance remove {i}: {}", o.stderr));
                }
            }
            for name in self.joined.iter().rev() {
                let o = run_for(&mut master.cmd("gnt-node", &["remove", name]), b"", bound);
                if o.code != 0 {
                    problems.push(format!("gnt-node remove {name}: {}{}", o.stdout, o.stderr));
                }
            }
            let o = run_for(&mut master.cmd("gnt-cluster", &["destroy", "--yes-do-it"]), b"", bound);
            if o.code != 0 {
                problems.push(format!("gnt-cluster destroy: {}{}", o.stdout, o.stderr));
            }
        }
        for node in &self.nodes {
            // Destroy (and node remove) leave ganeti-metad; a failed init
            // or join leaves daemons nothing else stops.
            let _ = run_for(&mut node.cmd(DAEMON_UTIL, &["stop-all"]), b"", Duration::from_secs(120));
            let _ = run_for(&mut node.cmd(DAEMON_UTIL, &["stop", "ganeti-metad"]), b"", Duration::from_secs(60));
        }
        for node in &mut self.nodes {
            if let Some(mut s) = node.sshd.take() {
                kill_child(&mut s, &mut problems, &format!("sshd of {}", node.name));
            }
        }
        // Whatever else still runs in a node's namespaces (a qemu a failed
        // step left, a daemon stop-all missed), by pid.
        for node in &self.nodes {
            let left = node.processes();
            if left.is_empty() {
                continue;
            }
            let names: Vec<String> = left.iter().map(|p| format!("{p} {}", fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default().trim())).collect();
            eprintln!("teardown: still running in {}: {names:?}; killing them", node.name);
            for p in &left {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p as i32), nix::sys::signal::Signal::SIGTERM);
            }
            let t = Instant::now();
            while left.iter().any(|p| alive(*p)) && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            for p in left.iter().filter(|p| alive(**p)) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p as i32), nix::sys::signal::Signal::SIGKILL);
            }
        }
        for node in &mut self.nodes {
            kill_child(&mut node.holder, &mut problems, &format!("namespace holder of {}", node.name));
        }
        // The veths go with their namespaces; the bridge is ours to remove.
        let t = Instant::now();
        for v in &self.veths {
            while link_exists(v) && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if link_exists(v) {
                let _ = run_for(&mut host("ip", &["link", "del", v]), b"", Duration::from_secs(30));
            }
        }
        if self.bridge {
            let o = run_for(&mut host("ip", &["link", "del", HOST_BRIDGE]), b"", Duration::from_secs(30));
            if o.code != 0 {
                problems.push(format!("ip link del {HOST_BRIDGE}: {}", o.stderr));
            }
        }
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("teardown: {problems:?}");
        } else if !problems.is_empty() {
            eprintln!("teardown problems (while failing): {problems:?}");
        }
    }
}

/// `gnt-instance console NAME` run on the master (it ssh'es to the
/// instance's primary node: root@node, each node's sshd) with a terminal of its own
/// (ssh -t, and socat's raw mode on the node, need one): everything the
/// serial console prints from the moment it attaches, and a way to type.
/// Killed (its whole session) on drop.
pub struct Console {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    input: fs::File,
    pub what: String,
}

/// A new pseudo-terminal: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    // SAFETY: plain libc calls on descriptors we own; each result checked.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0, "grantpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::unlockpt(m), 0, "unlockpt: {}", std::io::Error::last_os_error());
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0, "ptsname_r");
        let s = libc::open(buf.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(s >= 0, "open the pty's slave: {}", std::io::Error::last_os_error());
        let ws = libc::winsize { ws_row: 50, ws_col: 200, ws_xpixel: 0, ws_ypixel: 0 };
        libc::ioctl(m, libc::TIOCSWINSZ, &ws);
        (master, OwnedFd::from_raw_fd(s))
    }
}

impl Console {
    /// Attaches to `instance`'s serial console, wherever it runs
    /// (`primary` names that node in messages).
    pub fn attach(cluster: &Cluster, instance: &str, primary: &str) -> Console {
        let (master, slave) = openpty();
        let mut c = cluster.node(1).cmd("gnt-instance", &["console", instance]);
        c.env("TERM", "vt100").env("HOME", "/root");
        c.stdin(Stdio::from(slave.try_clone().unwrap())).stdout(Stdio::from(slave.try_clone().unwrap())).stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().unwrap_or_else(|e| panic!("gnt-instance console: {e}"));
        drop(c); // our copies of the slave
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let input = fs::File::from(master.try_clone().unwrap());
        let mut reader = fs::File::from(master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the terminal's last user is gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Console { child, out, input, what: format!("console of {instance} (on {primary})") }
    }

    /// Everything printed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Types `s` (a terminal's Enter is "\r").
    pub fn send(&mut self, s: &str) {
        self.input.write_all(s.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    /// Is `gnt-instance console` still attached?
    pub fn attached(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the console's text from byte `from` on contains
    /// `needle`; `Err` with the console's tail after `limit`, or when
    /// `refuse` appears. `poke` is typed every `poke_every` (e.g. Enter).
    pub fn wait_for(&mut self, from: usize, needle: &str, refuse: &[&str], limit: Duration, poke: Option<(&str, Duration)>) -> Result<Duration, String> {
        let t = Instant::now();
        let mut poked = Instant::now();
        loop {
            let all = self.out.lock().unwrap().clone();
            let text = String::from_utf8_lossy(&all[from.min(all.len())..]).into_owned();
            if text.contains(needle) {
                return Ok(t.elapsed());
            }
            for r in refuse {
                if text.contains(r) {
                    return Err(format!("{}: {r:?} appeared:\n{}", self.what, crate::common::readable_tail(&text, 40)));
                }
            }
            if t.elapsed() > limit {
                let alive = self.attached();
                return Err(format!("{}: no {needle:?} within {limit:?} (console attached: {alive}):\n{}", self.what, crate::common::readable_tail(&text, 40)));
            }
            if let Some((keys, every)) = poke {
                if poked.elapsed() >= every {
                    self.send(keys);
                    poked = Instant::now();
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The byte count so far (a mark for `wait_for`).
    pub fn mark(&self) -> usize {
        self.out.lock().unwrap().len()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        // Its session: gnt-instance console and the ssh it runs.
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
