//! Ganeti with two nodes and its real kvm hypervisor (qemu under TCG), on
//! this one machine: each node a network+mount+UTS namespace on a host
//! bridge (tests/common/ganeti_nodes.rs), each its own guest-installer
//! host (its own state dir and config, bound onto the same paths), the
//! golden templates on storage both nodes share (one directory bound onto
//! `STATE/templates` on both), `sharedfile` disks. Then:
//!
//! - the template is put in place and `ganeti variants` run on node 1
//!   before node 2 joins: the node added later has the templates, Ganeti
//!   offers `guest-installer+tpl` (valid on every node) and `gnt-cluster
//!   verify` finds no difference between the nodes' OS definitions;
//! - `gnt-instance add -t sharedfile -o guest-installer+tpl` clones it
//!   with its identity (a static address on the nodes' network), Ganeti's
//!   kvm boots it to `gi1 login:` on `gnt-instance console` (over SSH to
//!   the node), with the identity applied; root logs in there;
//! - `gnt-instance migrate` moves it, live, to node 2: the same shell
//!   answers on node 2's console, with the clone's host name;
//! - `gnt-instance failover` moves it back to node 1, where it boots to
//!   `gi1 login:` again;
//! - everything is torn down (instance, node, cluster, daemons, sshd,
//!   namespaces, veths, bridge) even when a step fails.
//!
//! Needs root and (scripts/setup.sh) ganeti, qemu, socat, openssh-server
//! and mmdebstrap (the golden template, cached across runs).
//! `cargo test --locked --test ganeti_kvm -- --nocapture` prints each
//! step's time.

mod common;
#[path = "common/ganeti_nodes.rs"]
mod ganeti_nodes;

use common::*;
use common::ganeti_os::{ganeti_machine_lock, install_os_definition};
use common::steps::TimedSteps;
use ganeti_nodes::{Cluster, Console, Layout, HOST_BRIDGE, HOST_CONFIG_DATA, OS_DIR, SHARED_STORAGE};
use guest_installer::template;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const INSTANCE: &str = "gi1.ganeti.test";
const INSTANCE_IP: &str = "198.51.100.31";
const NET_PARAMS: &str = "netmask=255.255.255.0,gateway=198.51.100.1,nameservers=198.51.100.53";
/// Disk 0: the template's 2 GiB and some room.
const DISK: &str = "0:size=2560M";
const PASSWORD: &str = "kvm horse battery staple";
/// A boot under TCG on a busy machine (measured: 80-115 s).
const BOOT_BOUND: Duration = Duration::from_secs(420);
const PROMPT_BOUND: Duration = Duration::from_secs(60);

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `program args` on a node, as Ganeti's node daemon runs it (root, our
/// config), its --json reply checked against the schema.
fn program_on(node: &ganeti_nodes::Node, program: &Path, config: &Path, args: &[&str]) -> Out {
    let mut c = node.cmd(program.to_str().unwrap(), args);
    c.env("GUEST_INSTALLER_CONFIG", config);
    let o = ganeti_nodes::run_for(&mut c, b"", Duration::from_secs(300)).of_request(args);
    if args.contains(&"--json") {
        o.json();
    }
    o
}

/// `NODE STATE` of the instance as Ganeti has it (`Y` running).
fn where_is(cluster: &Cluster) -> String {
    let o = cluster.must(&["gnt-instance", "list", "--no-headers", "--separator=|", "-o", "pnode,oper_state,status", INSTANCE]);
    o.stdout.trim().to_owned()
}

/// The instance's SSH host key (ed25519) as `ssh-keyscan` gets it from
/// `node` at the clone's static address on the nodes' network; None if
/// nothing answers within `limit`.
fn host_key(node: &ganeti_nodes::Node, limit: Duration) -> Option<String> {
    let t = Instant::now();
    while t.elapsed() < limit {
        let o = node.run(&["ssh-keyscan", "-T", "5", "-t", "ed25519", INSTANCE_IP]);
        if let Some(k) = o.stdout.lines().find_map(|l| l.strip_prefix(&format!("{INSTANCE_IP} ssh-ed25519 "))) {
            return Some(k.trim().to_owned());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    None
}

/// `ssh-keygen -l`'s fingerprint of a public key (`BASE64` of the
/// `ssh-ed25519 BASE64` line).
fn fingerprint_of(key: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let blob = base64::engine::general_purpose::STANDARD.decode(key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(&blob)))
}

/// What the guest (its root shell on `console`) and `node` say about the
/// network, for a failure message.
fn network_report(console: &mut Console, node: &ganeti_nodes::Node) -> String {
    let m = console.mark();
    console.send("ip -br link; ip -br addr; ip route; networkctl --no-pager list; echo gi-report-$((1+1))\r");
    let _ = console.wait_for(m, "gi-report-2", &[], PROMPT_BOUND, None);
    let guest = readable_tail(&String::from_utf8_lossy(&console.text().as_bytes()[m..]), 40);
    let host = ["ip -br link", "ip -br addr", "ls /sys/class/net/gnt0/brif"].iter().map(|c| {
        let a: Vec<&str> = c.split(' ').collect();
        let o = node.run(&a);
        format!("$ {c}\n{}{}", o.stdout, o.stderr)
    });
    format!("guest:\n{guest}\n{}:\n{}", node.name, host.collect::<Vec<_>>().join(""))
}

fn ok_or_panic(r: Result<Duration, String>) -> Duration {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn two_kvm_nodes_share_the_templates_migrate_and_fail_over_a_clone() {
    if !root() {
        eprintln!("SKIPPED: the two-node Ganeti test makes namespaces, a bridge and a cluster on this machine and needs root");
        return;
    }
    for p in ["/usr/sbin/gnt-cluster", "/usr/sbin/sshd", "/usr/bin/qemu-system-x86_64", "/usr/bin/socat", "/usr/bin/nsenter", "/usr/bin/unshare"] {
        assert!(Path::new(p).exists(), "{p} is missing: run scripts/setup.sh");
    }
    let steps = TimedSteps::default();
    let _machine = steps.run("machine lock (the other Ganeti test)", ganeti_machine_lock);
    assert!(!Path::new(HOST_CONFIG_DATA).exists(), "a Ganeti cluster is configured on this machine ({HOST_CONFIG_DATA}); this test stays away from it");
    let hosts_before = fs::read(Path::new("/etc/hosts")).unwrap();
    let fixture = steps.run("template fixture (cached after the first build)", template_fixture);
    let env = Env::new();
    // The program as it is now: a build running beside the test does not
    // change it under Ganeti.
    let program = env.root().join("bin/guest-installer");
    fs::create_dir_all(program.parent().unwrap()).unwrap();
    sh(Command::new("install").arg("-m").arg("0755").arg(bin()).arg(&program));
    let config_text = fs::read_to_string(&env.config).unwrap();

    let mut cluster = steps.run("two nodes: namespaces, bridges, sshd", || Cluster::up(&Layout { config: &env.config, state: &env.state, config_text: &config_text }));
    let list_target = install_os_definition(&cluster.srv.join(OS_DIR.trim_start_matches("/srv/")), &program, &env.config, &env.state);
    steps.run("gnt-cluster init (kvm, sharedfile) on node1", || cluster.init());

    // ---------------------------------------------------------- templates
    steps.run("template into the shared templates dir, ganeti variants on node1", || {
        sh(Command::new("cp").args(["-a", "--sparse=always"]).arg(fixture.join("tpl")).arg(cluster.templates.join("tpl")));
        let o = program_on(cluster.node(1), &program, &env.config, &["ganeti", "variants", "--json"]);
        let v = o.ok().json();
        assert_eq!(v["result"].as_str(), Some(format!("{}: tpl", list_target.display()).as_str()), "{v}");
    });
    steps.run("gnt-node add node2 (after the template was built)", || cluster.add_node(2));
    steps.run("gnt-cluster verify, gnt-os list", || {
        // Verify exits 1 here whatever we do (no /proc/sysrq-trigger in
        // this kernel's procfs): its findings are what counts.
        let v = cluster.gnt(&["gnt-cluster", "verify", "--error-codes"]);
        let out = format!("{}{}", v.stdout, v.stderr);
        eprintln!("gnt-cluster verify (exit {}):\n{out}", v.code);
        assert!([0, 1].contains(&v.code), "gnt-cluster verify: {v:?}");
        assert!(out.contains("Verifying node status"), "verify did not run its node checks:\n{out}");
        let os_lines: Vec<&str> = out.lines().filter(|l| l.contains("ENODEOS") || l.contains("guest-installer") || l.contains("variants")).collect();
        assert!(os_lines.is_empty(), "gnt-cluster verify found the OS definitions differ:\n{}", os_lines.join("\n"));
        // And nothing else wrong but what this machine's procfs lacks.
        let errors: Vec<&str> = out.lines().filter(|l| l.contains("ERROR") && !(l.contains(":ENODESETUP:") && l.contains("/proc/sysrq-trigger"))).collect();
        assert!(errors.is_empty(), "gnt-cluster verify:\n{}", errors.join("\n"));
        let os = cluster.must(&["gnt-os", "list", "--no-headers"]).stdout;
        assert!(os.lines().any(|l| l.trim() == "guest-installer+tpl"), "gnt-os list:\n{os}");
    });
    // The node added later has the template and its list: they are on the
    // storage both share.
    for n in [1, 2] {
        let node = cluster.node(n);
        let list = node.must(&["cat", &format!("{OS_DIR}/variants.list")]).stdout;
        assert_eq!(list.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(), ["tpl"], "{}'s variants.list:\n{list}", node.name);
        let o = program_on(node, &program, &env.config, &["templates", "--json"]);
        let j = o.ok().json();
        let names: Vec<&str> = j["templates"].as_array().map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect()).unwrap_or_default();
        assert_eq!(names, ["tpl"], "{}: {o:?}", node.name);
    }

    // ---------------------------------------------------------- add, boot
    let hash = guest_installer::secret::CryptHash::hash_cleartext(PASSWORD).unwrap().expose().to_owned();
    let secret = format!("root_hash={hash}");
    let net = format!("0:ip={INSTANCE_IP}");
    steps.run("gnt-instance add -t sharedfile -o guest-installer+tpl on node1", || {
        cluster.must(&[
            "gnt-instance",
            "add",
            "-t",
            "sharedfile",
            "--disk",
            DISK,
            "-o",
            "guest-installer+tpl",
            "-O",
            NET_PARAMS,
            "--os-parameters-secret",
            &secret,
            "--net",
            &net,
            "-B",
            "maxmem=512,minmem=512,vcpus=1",
            "--no-start",
            "--no-ip-check",
            "--no-name-check",
            "-n",
            "node1.ganeti.test",
            INSTANCE,
        ]);
    });
    // Its disk is on the shared storage.
    let disk_dir = cluster.srv.join(SHARED_STORAGE.trim_start_matches("/srv/")).join(INSTANCE);
    assert!(fs::read_dir(&disk_dir).is_ok_and(|d| d.count() == 1), "no disk in {}", disk_dir.display());

    let mut console = steps.run("gnt-instance startup, console attached", || {
        cluster.must(&["gnt-instance", "startup", INSTANCE]);
        Console::attach(&cluster, INSTANCE, "node1.ganeti.test")
    });
    let prompt = "gi1 login:";
    let refuse = [template::REFUSED_LINE];
    let t = steps.run("first boot on node1 to 'gi1 login:'", || ok_or_panic(console.wait_for(0, prompt, &refuse, BOOT_BOUND, None)));
    eprintln!("BENCH Ganeti kvm (TCG) startup -> '{prompt}' on the console: {:.1} s", t.as_secs_f64());
    let first = console.text();
    assert!(first.contains(template::APPLIED_LINE), "the identity was not applied:\n{}", readable_tail(&first, 40));
    // What the first-boot unit reports: its host name, its address, its
    // new host key, and a root filesystem grown to the instance's disk.
    let said = |what: &str| -> String {
        let tag = format!("gi-identity: {what}=");
        let line = first.split(['\r', '\n']).find_map(|l| l.split_once(tag.as_str()).map(|(_, v)| v.trim().to_owned()));
        line.unwrap_or_else(|| panic!("no {tag:?} on the console:\n{}", readable_tail(&first, 40)))
    };
    assert_eq!(said("hostname"), "gi1");
    assert_eq!(said("address"), format!("{INSTANCE_IP}/24 gateway=198.51.100.1"));
    let fingerprint = said("ssh-host-key");
    let root_bytes: u64 = said("root-bytes").parse().unwrap();
    assert!(root_bytes > 2_300_000_000, "the root filesystem did not grow to the 2560 MiB disk: {root_bytes} bytes");
    assert_eq!(where_is(&cluster), "node1.ganeti.test|Y|running");
    steps.run("root logs in on the console", || {
        let m = console.mark();
        console.send("root\r");
        ok_or_panic(console.wait_for(m, "Password:", &[], PROMPT_BOUND, None));
        let m = console.mark();
        console.send(&format!("{PASSWORD}\r"));
        ok_or_panic(console.wait_for(m, "root@gi1:", &["Login incorrect"], PROMPT_BOUND, None));
        // The shell's own state, to find after the migration.
        let m = console.mark();
        console.send("export GI_MARK=gi-$((40+2))\r");
        ok_or_panic(console.wait_for(m, "root@gi1:", &[], PROMPT_BOUND, None));
    });
    let key = host_key(cluster.node(1), PROMPT_BOUND).unwrap_or_else(|| panic!("{INSTANCE}'s sshd does not answer at {INSTANCE_IP} from node1:\n{}", network_report(&mut console, cluster.node(1))));
    assert_eq!(fingerprint_of(&key), fingerprint, "the sshd at {INSTANCE_IP} is not the clone's");

    // ---------------------------------------------------------- migrate
    steps.run("gnt-instance migrate (live) to node2", || {
        cluster.must(&["gnt-instance", "migrate", "-f", "-n", "node2.ganeti.test", INSTANCE]);
    });
    assert_eq!(where_is(&cluster), "node2.ganeti.test|Y|running");
    drop(console);
    let mut console = Console::attach(&cluster, INSTANCE, "node2.ganeti.test");
    steps.run("the same shell answers on node2's console", || {
        // (Enter until the shell's prompt shows: the console may take a
        // moment to attach.)
        ok_or_panic(console.wait_for(0, "root@gi1:", &[], PROMPT_BOUND, Some(("\r", Duration::from_secs(3)))));
        let m = console.mark();
        console.send("echo \"$GI_MARK on $(hostname)\"\r");
        ok_or_panic(console.wait_for(m, "gi-42 on gi1", &[], PROMPT_BOUND, None));
        // Its address moved with it: the same sshd answers there.
        let on2 =
            host_key(cluster.node(2), PROMPT_BOUND).unwrap_or_else(|| panic!("{INSTANCE}'s sshd does not answer at {INSTANCE_IP} from node2:\n{}", network_report(&mut console, cluster.node(2))));
        assert_eq!(on2, key, "another host key at {INSTANCE_IP} after the migration");
        // Logged out, getty asks again, with the clone's host name.
        let m = console.mark();
        console.send("exit\r");
        ok_or_panic(console.wait_for(m, prompt, &[], PROMPT_BOUND, None));
    });
    let after = console.text();
    assert!(!after.contains("Linux version") && !after.contains(template::APPLIED_LINE), "the guest booted again on node2:\n{}", readable_tail(&after, 40));

    // ---------------------------------------------------------- failover
    drop(console);
    let mut console = steps.run("gnt-instance failover to node1, console attached", || {
        cluster.must(&["gnt-instance", "failover", "-f", "-n", "node1.ganeti.test", INSTANCE]);
        Console::attach(&cluster, INSTANCE, "node1.ganeti.test")
    });
    assert_eq!(where_is(&cluster), "node1.ganeti.test|Y|running");
    steps.run("boot on node1 after the failover to 'gi1 login:'", || ok_or_panic(console.wait_for(0, prompt, &refuse, BOOT_BOUND, None)));
    let again = console.text();
    assert!(!again.contains(template::APPLIED_LINE), "the identity was applied a second time:\n{}", readable_tail(&again, 40));
    let back = host_key(cluster.node(1), PROMPT_BOUND).unwrap_or_else(|| panic!("{INSTANCE}'s sshd does not answer at {INSTANCE_IP} from node1 after the failover"));
    assert_eq!(back, key, "another host key at {INSTANCE_IP} after the failover");
    drop(console);
    steps.run("gnt-instance remove", || {
        cluster.must(&["gnt-instance", "remove", "-f", "--shutdown-timeout=0", INSTANCE]);
    });
    assert!(cluster.instances().is_empty());
    assert!(!disk_dir.exists(), "{} is left after remove", disk_dir.display());

    // ---------------------------------------------------------- teardown
    let pids = cluster.pids();
    let namespaces = cluster.namespaces();
    assert_eq!(namespaces.len(), 4, "{namespaces:?}");
    steps.run("teardown", || drop(cluster));
    let left = ganeti_nodes::processes_in(&namespaces);
    assert!(left.is_empty(), "still running in the nodes' namespaces after teardown: {left:?}");
    for p in pids {
        assert!(!Path::new(&format!("/proc/{p}")).exists(), "pid {p} outlived the teardown");
    }
    for l in [HOST_BRIDGE, "gikv1", "gikv2"] {
        assert!(!Path::new("/sys/class/net").join(l).exists(), "{l} is left after teardown");
    }
    assert!(!Path::new(HOST_CONFIG_DATA).exists(), "the host has a Ganeti config after teardown");
    assert_eq!(fs::read(Path::new("/etc/hosts")).unwrap(), hosts_before, "the host's /etc/hosts changed");
    eprintln!("STEPS total {:.1} s", steps.total());
}
