//! Ganeti, for real: a single-node Ganeti 3.0 cluster on this machine
//! (the `fake` hypervisor, `file` disks; a bridge `gnt0` with TEST-NET-2
//! addresses; the node's name set in a UTS namespace, two lines added to
//! /etc/hosts and removed again), our OS definition installed from the
//! files the package ships (only the program's path and config
//! substituted), and then:
//!
//! - `verify parameters` refuses each bad parameter and no instance is left;
//! - `gnt-instance add -o guest-installer+tpl` with a private root_hash
//!   clones the template onto the instance's disk file with its identity
//!   (read back with debugfs), and that disk boots under our qemu driver
//!   to `HOST login:`, with the hash in /etc/shadow and the seed gone;
//! - rename (after the first boot, and before it), reinstall with and
//!   without the parameters, export and import (the disk comes back byte
//!   for byte), remove;
//! - the remctl front door in cluster mode, as the owner and as a stranger
//!   (exit 3, nothing done), with `cancel` of a queued install job;
//! - everything is torn down (instances, exports, cluster, daemons, the
//!   bridge, the hosts lines, the OS definition) even when a step fails.
//!
//! Needs root and (scripts/setup.sh) ganeti, qemu, debugfs, mmdebstrap
//! and the remctl/krb5 packages of tests/remctl.rs.

mod common;

use common::realm::{run_bounded, Realm};
use common::ganeti_os::{self, ganeti_machine_lock};
use common::steps::TimedSteps;
use common::*;
use guest_installer::config::Config;
use guest_installer::hypervisor::qemu::Qemu;
use guest_installer::hypervisor::{Domain, Hypervisor};
use guest_installer::media::Media;
use guest_installer::state::VmDir;
use guest_installer::template;
use guest_installer::types::{DiskPath, Mac, MemoryMib, Vcpus, VmName};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NODE: &str = "node1.ganeti.test";
const HOSTS_LINES: [&str; 2] = ["198.51.100.10 node1.ganeti.test node1", "198.51.100.20 cluster.ganeti.test cluster"];
const OS_DIR: &str = "/srv/ganeti/os/guest-installer";
const STORAGE: &str = "/srv/ganeti/file-storage";
/// Debian's Ganeti keeps exports here.
const EXPORTS: &str = "/var/lib/ganeti/export";
const PATHS_FILE: &str = "/etc/ganeti/file-storage-paths";
const CONFIG_DATA: &str = "/var/lib/ganeti/config.data";
const OS_LOGS: &str = "/var/log/ganeti/os";
/// Disk 0 of every instance: the template's 2 GiB and some room.
const DISK: &str = "0:size=2560M";
const HASH1: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";
const PASSWORD: &str = "cluster horse battery staple";
const BOOT_BOUND: Duration = Duration::from_secs(420);

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("LC_ALL", "C");
    c
}

fn gnt(args: &[&str]) -> Out {
    run_bounded(cmd(args[0], &args[1..]), b"", Duration::from_secs(600))
}

fn must(args: &[&str]) -> Out {
    let o = gnt(args);
    assert_eq!(o.code, 0, "{args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o
}

/// `gnt-cluster ...` run as the node (in a UTS namespace named after it).
fn as_node(args: &str) -> Out {
    let script = format!("hostname {NODE} && exec {args}");
    run_bounded(cmd("unshare", &["--uts", "sh", "-c", &script]), b"", Duration::from_secs(600))
}

fn instances() -> Vec<String> {
    must(&["gnt-instance", "list", "--no-headers", "-o", "name"]).stdout.lines().map(str::to_owned).collect()
}

/// The cluster and everything the test set up for it; undone on drop,
/// whatever state a failed step left.
#[derive(Default)]
struct Cluster {
    bridge: bool,
    hosts: bool,
    paths_before: Option<Option<Vec<u8>>>,
    made_srv: bool,
    os_dir: bool,
    init: bool,
}

impl Cluster {
    fn up(&mut self, env: &Env) {
        assert!(!Path::new(CONFIG_DATA).exists(), "a Ganeti cluster is configured on this machine ({CONFIG_DATA}); this test would destroy it");
        assert!(gnt(&["ip", "link", "show", "gnt0"]).code != 0, "an interface gnt0 exists already");
        self.bridge = true;
        must(&["ip", "link", "add", "gnt0", "type", "bridge"]);
        must(&["ip", "link", "set", "gnt0", "up"]);
        must(&["ip", "addr", "add", "198.51.100.10/24", "dev", "gnt0"]);
        let hosts = fs::read_to_string("/etc/hosts").unwrap();
        for l in HOSTS_LINES {
            assert!(!hosts.lines().any(|h| h == l), "/etc/hosts already holds {l:?} (a previous run's?)");
        }
        self.hosts = true;
        let mut text = hosts.clone();
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        for l in HOSTS_LINES {
            text.push_str(l);
            text.push('\n');
        }
        fs::write("/etc/hosts", text).unwrap();
        self.paths_before = Some(fs::read(PATHS_FILE).ok());
        fs::write(PATHS_FILE, format!("{STORAGE}\n")).unwrap();
        self.made_srv = !Path::new("/srv/ganeti").exists();
        fs::create_dir_all(STORAGE).unwrap();
        self.os_dir = true;
        install_os_definition(env);
        self.init = true;
        let o = as_node(&format!(
            "gnt-cluster init --enabled-hypervisors=fake --enabled-disk-templates=file --file-storage-dir={STORAGE} \
             --nic-parameters=mode=bridged,link=gnt0 --master-netdev=gnt0 --master-netmask=24 --no-etc-hosts --no-ssh-init \
             --ipolicy-bounds-specs min:cpu-count=1,disk-count=1,disk-size=32,memory-size=64,nic-count=0,spindle-use=1/max:cpu-count=8,disk-count=16,disk-size=1048576,memory-size=32768,nic-count=8,spindle-use=12 \
             --ipolicy-std-specs cpu-count=1,disk-count=1,disk-size=64,memory-size=128,nic-count=1,spindle-use=1 cluster.ganeti.test"
        ));
        assert_eq!(o.code, 0, "gnt-cluster init: {o:?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        if self.init {
            for i in gnt(&["gnt-instance", "list", "--no-headers", "-o", "name"]).stdout.lines() {
                let o = gnt(&["gnt-instance", "remove", "-f", "--ignore-failures", i]);
                if o.code != 0 {
                    problems.push(format!("remove {i}: {}", o.stderr));
                }
            }
            // Our exports only: the directory is Ganeti's.
            for e in fs::read_dir(EXPORTS).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().ends_with(".ganeti.test") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
            let o = as_node("gnt-cluster destroy --yes-do-it");
            if o.code != 0 {
                problems.push(format!("gnt-cluster destroy: {}", o.stderr));
            }
            // Started at the first instance add; destroy leaves it. And
            // an init that failed part-way leaves daemons destroy cannot
            // stop (there is no cluster to destroy).
            let _ = gnt(&["/usr/lib/ganeti/daemon-util", "stop", "ganeti-metad"]);
            let _ = gnt(&["/usr/lib/ganeti/daemon-util", "stop-all"]);
        }
        if self.os_dir {
            let _ = fs::remove_dir_all(OS_DIR);
        }
        if self.made_srv {
            let _ = fs::remove_dir_all("/srv/ganeti");
        }
        match self.paths_before.take() {
            Some(Some(before)) => fs::write(PATHS_FILE, before).unwrap_or_else(|e| problems.push(format!("{PATHS_FILE}: {e}"))),
            Some(None) => {
                let _ = fs::remove_file(PATHS_FILE);
            }
            None => {}
        }
        if self.hosts {
            // Only our lines go; the machine's own stay as they are.
            if let Ok(text) = fs::read_to_string("/etc/hosts") {
                let kept: String = text.lines().filter(|l| !HOSTS_LINES.contains(l)).map(|l| format!("{l}\n")).collect();
                if kept != text {
                    fs::write("/etc/hosts", kept).unwrap_or_else(|e| problems.push(format!("/etc/hosts: {e}")));
                }
            }
        }
        if self.bridge {
            let _ = gnt(&["ip", "link", "del", "gnt0"]);
        }
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("teardown: {problems:?}");
        }
    }
}

/// The package's OS definition with this build's binary and the test's
/// config; its variants.list links to the state dir's templates.
fn install_os_definition(env: &Env) {
    let target = ganeti_os::install_os_definition(Path::new(OS_DIR), &bin(), &env.config, &env.state);
    assert_eq!(target, env.state.join("templates/.variants.list"));
}

/// debugfs's view of a file in the filesystem on `disk`: None if absent.
fn guest_file(disk: &Path, path: &str) -> Option<String> {
    let st = cmd("debugfs", &["-R", &format!("stat {path}"), &root_fs(disk)]).output().unwrap();
    if !String::from_utf8_lossy(&st.stdout).contains("Inode:") {
        return None;
    }
    Some(sh(&mut cmd("debugfs", &["-R", &format!("cat {path}"), &root_fs(disk)])))
}

fn guest_mode(disk: &Path, path: &str) -> String {
    let st = sh(&mut cmd("debugfs", &["-R", &format!("stat {path}"), &root_fs(disk)]));
    st.split_whitespace().skip_while(|w| *w != "Mode:").nth(1).unwrap_or("").to_owned()
}

/// The seed's `key=value` lines.
fn seed_of(disk: &Path) -> std::collections::BTreeMap<String, String> {
    let s = guest_file(disk, "/var/lib/gi-identity/seed").expect("no identity seed in the clone");
    assert!([template::SEED_MAGIC, template::SEED_MAGIC_V3].contains(&s.lines().next().unwrap_or("")), "{s}");
    s.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// The only disk file of instance `name`.
fn disk_of(name: &str) -> PathBuf {
    let dir = Path::new(STORAGE).join(name);
    let files: Vec<PathBuf> = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if m.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if m.is_file() && m.len() < 64 << 20 && fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())) {
            out.push(p);
        }
    }
    out
}

fn add_args<'a>(name: &'a str, ip: &'a str, params: &'a [&'a str]) -> Vec<&'a str> {
    let mut a = vec!["gnt-instance", "add", "-t", "file", "--disk", DISK, "-o", "guest-installer+tpl", "--net", ip, "-B", "maxmem=512,minmem=512", "--no-start", "--no-ip-check", "--no-name-check", "-n", NODE];
    a.extend_from_slice(params);
    a.push(name);
    a
}

const NET_PARAMS: &str = "netmask=255.255.255.0,gateway=198.51.100.1,nameservers=198.51.100.53 198.51.100.54";
/// An owner's SSH key (no comma in it: `-O` splits on commas).
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH+2i5AKkiRgfmm31jnpzTRX9C1c7OzuKqgSZ7WAoSvs bob@laptop";

#[test]
fn ganeti_os_definition_and_cluster_mode_on_a_real_cluster() {
    if !root() {
        eprintln!("SKIPPED: the Ganeti test sets up a cluster on this machine and needs root");
        return;
    }
    assert!(Path::new("/usr/sbin/gnt-cluster").exists(), "Ganeti is not installed: run scripts/setup.sh");
    let _machine = ganeti_machine_lock();
    let steps = TimedSteps::default();
    steps.run("template fixture (cached after the first build)", template_fixture);
    let env = Env::new();
    let text = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, format!("{text}\n[cluster]\nengine = \"ganeti\"\ndisk_template = \"file\"\ndisk_mib = 2560\nnode = \"{NODE}\"\ncommand_s = 300\njob_s = 600\n")).unwrap();
    env.use_qemu();
    add_template(&env);
    let v = env.run(As::Root, &["ganeti", "variants", "--json"], b"").ok().json();
    assert!(v["result"].as_str().unwrap().ends_with(": tpl"), "{v}");
    // Not for remote callers, not even admins.
    let o = env.run(As::Remote(ADMIN), &["ganeti", "variants"], b"");
    assert_eq!(o.code, 3, "{o:?}");
    let logs_before: Vec<PathBuf> = fs::read_dir(OS_LOGS).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();

    let mut cluster = Cluster::default();
    steps.run("cluster up (bridge, hosts, gnt-cluster init)", || cluster.up(&env));
    let os = must(&["gnt-os", "list", "--no-headers"]).stdout;
    assert!(os.lines().any(|l| l.trim() == "guest-installer+tpl"), "{os}");

    // ---------------------------------------------------------- verify
    steps.run("verify refuses each bad parameter", || {
        for (params, want) in [
            (vec!["-O", NET_PARAMS, "--os-parameters-private", "root_hash=notahash"], "crypt hash"),
            (vec!["-O", "netmask=255.0.255.0", "--os-parameters-private", &format!("root_hash={HASH1}")], "netmask"),
            (vec!["-O", "gateway=198.51.100.300"], "gateway"),
            (vec!["-O", "nameservers=1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4"], "nameservers"),
            (vec!["-O", "dhcp=yes"], "dhcp"),
            (vec!["-O", "ssh_keys=ssh-dss AAAA"], "ssh_keys"),
        ] {
            let o = gnt(&add_args("bad.ganeti.test", "0:ip=198.51.100.29", &params));
            let out = format!("{}{}", o.stdout, o.stderr);
            assert_ne!(o.code, 0, "{params:?} accepted: {out}");
            assert!(out.contains(want), "{params:?}: {out}");
            assert!(!out.contains("notahash") && !out.contains("3rj1vTLX"), "a value was echoed: {out}");
            assert!(instances().is_empty(), "{params:?} left an instance");
            assert!(!Path::new(STORAGE).join("bad.ganeti.test").exists(), "{params:?} left a disk");
        }
    });

    // ---------------------------------------------------------- add
    let name = "gi1.ganeti.test";
    let private = format!("root_hash={HASH1}");
    steps.run("gnt-instance add (private root_hash)", || {
        must(&add_args(name, "0:ip=198.51.100.21", &["-O", NET_PARAMS, "--os-parameters-private", &private]));
    });
    let disk = disk_of(name);
    let mac = must(&["gnt-instance", "list", "--no-headers", "-o", "nic.mac/0", name]).stdout.trim().to_owned();
    let seed = seed_of(&disk);
    for (k, v) in [("hostname", "gi1"), ("domain", "ganeti.test"), ("address", "198.51.100.21"), ("prefix", "24"), ("gateway", "198.51.100.1"), ("mac", mac.as_str()), ("root_hash", HASH1)] {
        assert_eq!(seed.get(k).map(String::as_str), Some(v), "{k} in {seed:?}");
    }
    assert_eq!(guest_mode(&disk, "/var/lib/gi-identity/seed"), "0600");
    // The clone is the template's whole disk: its partition 1 holds the
    // root filesystem, with the label the boot menu finds.
    let label = sh(&mut cmd("e2label", &[&root_fs(&disk)]));
    assert_eq!(label.trim(), template::ROOT_LABEL);

    // ---------------------------------------------------------- boot
    steps.run("boot the instance's disk with the qemu driver to the login prompt (TCG)", || boot_and_stop(&env, &disk, &mac, "gi1"));
    assert_eq!(guest_file(&disk, "/var/lib/gi-identity/seed"), None, "the seed outlived its use");
    assert!(guest_file(&disk, "/var/lib/gi-identity/done").is_some());
    let shadow = guest_file(&disk, "/etc/shadow").unwrap();
    assert!(shadow.lines().any(|l| l.starts_with(&format!("root:{HASH1}:"))), "root's hash is not the one given");
    assert_eq!(guest_file(&disk, "/etc/hostname").unwrap(), "gi1\n");
    // A password and no key: sshd takes the password for root (our drop-in).
    let drop_in = guest_file(&disk, "/etc/ssh/sshd_config.d/50-guest-installer.conf").unwrap_or_default();
    assert!(drop_in.lines().any(|l| l == "PermitRootLogin yes"), "{drop_in}");
    assert_eq!(guest_file(&disk, "/root/.ssh/authorized_keys"), None);

    // ---------------------------------------------------------- rename, reinstall
    steps.run("rename a booted guest (gi1 -> gi2)", || {
        must(&["gnt-instance", "rename", "--force", "--no-ip-check", "--no-name-check", name, "gi2.ganeti.test"]);
    });
    let name = "gi2.ganeti.test";
    let disk = disk_of(name);
    assert_eq!(guest_file(&disk, "/etc/hostname").unwrap(), "gi2\n");
    let hosts = guest_file(&disk, "/etc/hosts").unwrap();
    assert!(hosts.contains("198.51.100.21\tgi2.ganeti.test gi2") && !hosts.contains("gi1"), "{hosts}");
    steps.run("reinstall without parameters (Ganeti passes the stored ones once)", || {
        must(&["gnt-instance", "reinstall", "-f", name]);
    });
    let seed = seed_of(&disk);
    assert_eq!((seed["hostname"].as_str(), seed["root_hash"].as_str()), ("gi2", HASH1));
    let before = sha256(&disk);
    steps.run("reinstall again without parameters: refused, disk untouched", || {
        let o = gnt(&["gnt-instance", "reinstall", "-f", name]);
        assert_ne!(o.code, 0, "{o:?}");
        let out = format!("{}{}", o.stdout, o.stderr);
        assert!(out.contains("--os-parameters-private") && out.contains("--os-parameters-secret"), "{out}");
        assert!(out.contains("a reinstall empties the stored ones"), "{out}");
    });
    assert_eq!(sha256(&disk), before, "a refused reinstall changed the disk");
    let hash2 = guest_installer::secret::CryptHash::hash_cleartext("second password").unwrap().expose().to_owned();
    // (Private again: the instance may still hold the private root_hash it
    // was added with, which a secret one would conflict with. The front
    // door below passes it as a secret, to create and to reinstall.)
    steps.run("reinstall with the parameters (and a key), --debug", || {
        let since = std::time::SystemTime::now();
        must(&["gnt-instance", "reinstall", "-f", "--debug", "-O", &format!("{NET_PARAMS},ssh_keys={KEY}"), "--os-parameters-private", &format!("root_hash={hash2}"), name]);
        // Ganeti's DEBUG_LEVEL: our create logs what Ganeti passed, a
        // parameter by name only, in the OS log Ganeti keeps.
        let logs: Vec<PathBuf> = fs::read_dir("/var/log/ganeti/os")
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| fs::metadata(p).unwrap().modified().unwrap() >= since && p.file_name().unwrap().to_str().unwrap().contains(name))
            .collect();
        let log: String = logs.iter().map(|p| fs::read_to_string(p).unwrap()).collect();
        assert!(log.contains(&format!("guest-installer: debug: ganeti-create INSTANCE_NAME={name}")) && log.contains("OS parameter root_hash given"), "{logs:?}:\n{log}");
        assert!(!log.contains(&hash2), "the OS log holds the hash");
    });
    let seed = seed_of(&disk);
    assert_eq!((seed["root_hash"].as_str(), seed["ssh_key"].as_str(), seed["ssh_password"].as_str()), (hash2.as_str(), KEY, "no"), "{seed:?}");
    steps.run("rename before the first boot (gi2 -> gi3: the seed)", || {
        must(&["gnt-instance", "rename", "--force", "--no-ip-check", "--no-name-check", name, "gi3.ganeti.test"]);
    });
    let name = "gi3.ganeti.test";
    let disk = disk_of(name);
    let seed = seed_of(&disk);
    assert_eq!((seed["hostname"].as_str(), seed["root_hash"].as_str(), seed["address"].as_str()), ("gi3", hash2.as_str(), "198.51.100.21"));
    assert_eq!(guest_mode(&disk, "/var/lib/gi-identity/seed"), "0600");

    // ---------------------------------------------------------- export, import
    let copy = env.root().join("gi3-before-export.img");
    sh(Command::new("cp").args(["--sparse=always"]).arg(&disk).arg(&copy));
    steps.run("gnt-backup export", || {
        must(&["gnt-backup", "export", "-n", NODE, name]);
    });
    steps.run("gnt-instance remove", || {
        must(&["gnt-instance", "remove", "-f", name]);
    });
    assert!(instances().is_empty());
    steps.run("gnt-backup import", || {
        must(&["gnt-backup", "import", "-n", NODE, "--src-node", NODE, "--src-dir", &format!("{EXPORTS}/{name}"), "-t", "file", "--net", "0:ip=198.51.100.21,mac=generate", "--no-ip-check", "--no-name-check", name]);
    });
    let imported = disk_of(name);
    let same = Command::new("cmp").arg("-s").arg(&copy).arg(&imported).status().unwrap();
    assert!(same.success(), "the imported disk differs from the exported one");
    steps.run("gnt-instance remove (imported)", || {
        must(&["gnt-instance", "remove", "-f", name]);
        must(&["gnt-backup", "remove", name]);
    });
    assert!(instances().is_empty());

    // ---------------------------------------------------------- front door
    steps.run("remctl front door in cluster mode", || front_door(&env));

    // Nothing of a hash in Ganeti's logs; the secret ones nowhere in its state.
    let new_logs: Vec<PathBuf> = fs::read_dir(OS_LOGS).unwrap().flatten().map(|e| e.path()).filter(|p| !logs_before.contains(p)).collect();
    assert!(new_logs.len() >= 5, "{new_logs:?}");
    for needle in [HASH1, hash2.as_str()] {
        assert_eq!(files_containing(Path::new(OS_LOGS), needle), Vec::<PathBuf>::new());
    }
    // Private ones went with their instance.
    for needle in [HASH1, hash2.as_str()] {
        assert_eq!(files_containing(Path::new("/var/lib/ganeti"), needle), Vec::<PathBuf>::new(), "a removed instance's hash in Ganeti's state");
    }

    steps.run("teardown", || drop(cluster));
    for p in [OS_DIR, CONFIG_DATA] {
        assert!(!Path::new(p).exists(), "{p} is left after teardown");
    }
    let hosts = fs::read_to_string("/etc/hosts").unwrap();
    assert!(!HOSTS_LINES.iter().any(|l| hosts.contains(l)), "{hosts}");
    assert!(gnt(&["ip", "link", "show", "gnt0"]).code != 0, "gnt0 is left");
    eprintln!("STEPS total {:.1} s", steps.total());
}

/// Boots the instance's disk file under our qemu driver (the boot loader
/// inside the guest, no seed disk: the seed is in the filesystem), waits
/// for `HOST login:`, then shuts it down cleanly.
fn boot_and_stop(env: &Env, disk: &Path, mac: &str, host: &str) {
    let config = Config::load(&env.config).unwrap();
    let vm = VmName::parse("gnt-boot").unwrap();
    let vmdir = VmDir::new(&config, &vm);
    fs::create_dir_all(&vmdir.dir).unwrap();
    let disk = DiskPath::parse(disk.to_str().unwrap()).unwrap();
    // The instance's disk is a whole disk: the firmware boots its boot code.
    let media = Media::Disk { pv: false };
    let d = Domain {
        name: &vm,
        memory_mib: MemoryMib::try_from(512).unwrap(),
        vcpus: Vcpus::try_from(1).unwrap(),
        disk: &disk,
        mac: Mac::parse(mac).unwrap(),
        bridge: &config.hypervisor.bridge,
        media: &media,
    };
    // The driver in this process, its supervisor the real program (by
    // default it would be this test binary).
    let hv = Qemu::new(&config).with_supervisor(bin());
    hv.prepare(&d, &vmdir).unwrap();
    let guard = Guest::new(env, vm.as_str());
    hv.start(&d, &vmdir).unwrap();
    let t = Instant::now();
    let console = hv.console_log(&vm, &vmdir);
    let read = || String::from_utf8_lossy(&fs::read(&console).unwrap_or_default()).into_owned();
    loop {
        let c = read();
        assert!(!c.contains(template::REFUSED_LINE), "the guest refused its seed:\n{}", readable_tail(&c, 40));
        if c.contains(&format!("{host} login:")) {
            break;
        }
        assert!(t.elapsed() < BOOT_BOUND, "no login prompt within {BOOT_BOUND:?}:\n{}", readable_tail(&c, 40));
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("BENCH qemu start -> '{host} login:' {:.1} s (TCG)", t.elapsed().as_secs_f64());
    let c = read();
    assert!(c.contains(template::APPLIED_LINE), "{}", readable_tail(&c, 40));
    assert!(c.contains(&format!("gi-identity: hostname={host}")), "{}", readable_tail(&c, 40));
    // A clean shutdown, so that the filesystem is clean for rename.
    hv.shutdown(&vm, &vmdir).unwrap();
    let t = Instant::now();
    while hv.is_running(&vm, &vmdir).unwrap() {
        assert!(t.elapsed() < Duration::from_secs(300), "the guest did not shut down:\n{}", readable_tail(&read(), 20));
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(guard);
}

/// The OS definition's scripts take what Ganeti gives them (no argument;
/// verify's `parameters`): anything else is refused with their usage,
/// before the program runs.
#[test]
fn os_scripts_refuse_arguments_with_their_usage() {
    for (script, args) in [("create", &["x"][..]), ("export", &["x"]), ("import", &["--debug"]), ("rename", &["a", "b"]), ("verify", &[]), ("verify", &["parameters", "x"])] {
        let mut c = cmd("sh", &[repo().join("ganeti/os").join(script).to_str().unwrap()]);
        c.args(args);
        let o = run_bounded(c, b"", Duration::from_secs(30));
        assert_eq!(o.code, 1, "{script} {args:?}: {o:?}");
        assert!(o.stderr.starts_with(&format!("usage: {script}")), "{script} {args:?}: {o:?}");
    }
}

/// The front door in cluster mode, through a real remctld.
fn front_door(env: &Env) {
    let base = env.root().join("remctl");
    for d in ["conf.d", "acl", "realm"] {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    let dropin = fs::read_to_string(repo().join("remctl.d/guest-installer")).unwrap();
    fs::write(base.join("conf.d/guest-installer"), dropin.replace(" /usr/sbin/guest-installer ", &format!(" {} ", bin().display()))).unwrap();
    fs::write(base.join("acl/guest-installer-admins"), format!("{ADMIN}\n")).unwrap();
    let realm = Realm::up(
        &base.join("realm"),
        &[
            "--include",
            base.join("conf.d").to_str().unwrap(),
            "--acl-dir",
            base.join("acl").to_str().unwrap(),
            "--setenv",
            &format!("GUEST_INSTALLER_CONFIG={}", env.config.display()),
        ],
        &["bob", "mallory"],
    );
    env.machine_with("web1", 31, None, &["ip=198.51.100.31", "gateway=198.51.100.1", "netmask=255.255.255.0", "nameserver=198.51.100.53", "template=tpl", "memory=512"]);
    let instance = "web1.example.org";
    let jobs = || must(&["gnt-job", "list", "--no-headers"]).stdout;
    let jobs_before = jobs();

    // A stranger: refused before anything happens.
    for args in [vec!["guest", "install", "web1", "template=tpl", PASSWORD], vec!["guest", "status", "web1"], vec!["guest", "cancel", "web1"], vec!["guest", "start", "web1"]] {
        let o = realm.remctl(STRANGER, &args);
        assert_eq!(o.code, 3, "{args:?}: {o:?}");
        let _ = env.audit();
    }
    assert!(instances().is_empty());
    assert_eq!(jobs(), jobs_before, "a stranger's request reached Ganeti");

    // The owner, with a registered key: a new instance, started; the
    // request's progress reaches the client on stderr as it goes, stdout is
    // one document.
    realm.remctl(OWNER, &["guest", "key", "add", KEY]).ok();
    let o = realm.remctl(OWNER, &["guest", "install", "web1", "template=tpl", "--json", PASSWORD]);
    let j = o.ok().json();
    assert_eq!(j["root_login"], serde_json::json!({"ssh_keys": 1, "ssh_password": false, "console_password": true}), "{j}");
    let _ = env.audit();
    assert_eq!((j["action"].as_str(), j["instance"].as_str(), j["running"].as_bool()), (Some("created"), Some(instance), Some(true)), "{j}");
    assert_job_steps(&o, &[&format!("submitting the Ganeti job (create of {instance})")], &format!("Ganeti job {}: success", j["job"]));
    let disk = disk_of(instance);
    let seed = seed_of(&disk);
    assert_eq!((seed["hostname"].as_str(), seed["domain"].as_str(), seed["address"].as_str(), seed["mac"].as_str()), ("web1", "example.org", "198.51.100.31", "00:16:3e:00:00:1f"));
    assert!(sha_crypt::sha512_check(PASSWORD, &seed["root_hash"]).is_ok(), "the seed's hash does not verify the owner's password");
    assert_eq!((seed["ssh_key"].as_str(), seed["ssh_password"].as_str()), (KEY, "no"), "{seed:?}");
    let hash = seed["root_hash"].clone();
    assert_eq!(files_containing(Path::new("/var/lib/ganeti"), &hash), Vec::<PathBuf>::new(), "the secret hash is in Ganeti's state");
    assert!(!realm.log().contains(PASSWORD) && !realm.log().contains(&hash));
    assert_eq!(files_containing(&env.state.join("vms/web1"), &hash), Vec::<PathBuf>::new(), "the job file outlived the job");
    let tags = must(&["gnt-instance", "list", "--no-headers", "-o", "tags,be/memory,os", instance]).stdout;
    assert_eq!(tags.split_whitespace().collect::<Vec<_>>(), ["guest-installer:web1", "512M", "guest-installer+tpl"], "{tags}");

    let s = realm.remctl(OWNER, &["guest", "status", "web1", "--json"]).ok().json();
    assert_eq!((s["state"].as_str(), s["running"].as_bool(), s["template"].as_str()), (Some("installed"), Some(true), Some("tpl")), "{s}");
    // list shows the instance as Ganeti has it, to its owner only.
    let l = realm.remctl(OWNER, &["guest", "list", "--json"]).ok().json();
    let row = &l["machines"][0];
    assert_eq!(
        (row["vm"].as_str(), row["state"].as_str(), row["running"].as_bool(), row["template"].as_str(), row["instance"].as_str(), row["instance_status"].as_str()),
        (Some("web1"), Some("installed"), Some(true), Some("tpl"), Some(instance), Some("running")),
        "{l}"
    );
    let l = realm.remctl(STRANGER, &["guest", "list", "--json"]).ok().json();
    assert_eq!(l["machines"], serde_json::json!([]), "{l}");
    let s = realm.remctl(OWNER, &["guest", "stop", "web1", "--json"]).ok().json();
    assert_eq!(s["running"], false, "{s}");
    let s = realm.remctl(OWNER, &["guest", "start", "web1", "--json"]).ok().json();
    assert_eq!(s["running"], true, "{s}");
    let o = realm.remctl(OWNER, &["guest", "start", "web1", "--json"]);
    assert_eq!(o.code, 5, "{o:?}");
    // An instance of the machine's name without our tag is not this
    // machine: it is never powered (nor reinstalled) on the owner's word.
    must(&["gnt-instance", "remove-tags", instance, "guest-installer:web1"]);
    for verb in ["stop", "reboot", "install"] {
        let o = realm.remctl(OWNER, &["guest", verb, "web1", "--json", PASSWORD][..if verb == "install" { 5 } else { 4 }]);
        assert_eq!(o.code, 1, "{verb}: {o:?}");
        assert!(o.stdout.contains("not ours to manage"), "{verb}: {o:?}");
    }
    assert!(must(&["gnt-instance", "list", "--no-headers", "-o", "oper_state", instance]).stdout.contains('Y'), "it was stopped");
    let l = realm.remctl(OWNER, &["guest", "list", "--json"]).ok().json();
    assert_eq!((l["machines"][0]["instance_status"].clone(), l["machines"][0]["running"].clone()), (serde_json::Value::Null, serde_json::Value::Null), "an untagged instance listed as web1: {l}");
    must(&["gnt-instance", "add-tags", instance, "guest-installer:web1"]);
    // Install again, with keys=none: the running instance is stopped and
    // reinstalled, and the key Ganeti stored at the create is not used.
    let o = realm.remctl(OWNER, &["guest", "install", "web1", "--no-start", "keys=none", "--json", "another password"]);
    let j = o.ok().json();
    assert_eq!(j["root_login"], serde_json::json!({"ssh_keys": 0, "ssh_password": true, "console_password": true}), "{j}");
    assert_eq!((j["action"].as_str(), j["running"].as_bool()), (Some("reinstalled"), Some(false)), "{j}");
    let submitted = format!("submitting the Ganeti job (reinstall of {instance})");
    assert_job_steps(&o, &[&format!("stopping Ganeti instance {instance}"), &submitted], &format!("Ganeti job {}: success", j["job"]));
    let seed = seed_of(&disk);
    assert!(sha_crypt::sha512_check("another password", &seed["root_hash"]).is_ok());
    assert_eq!((seed.get("ssh_key"), seed["ssh_password"].as_str()), (None, "yes"), "{seed:?}");
    let o = realm.remctl(OWNER, &["guest", "cancel", "web1", "--json"]);
    assert_eq!(o.code, 2, "nothing to cancel: {o:?}");
    for args in [vec!["guest", "install", "web1", "image=deb12", PASSWORD], vec!["guest", "install", "web1", "hostname=other", PASSWORD]] {
        let o = realm.remctl(OWNER, &args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
    }
    let _ = env.audit();

    // Cancel: a job waiting in Ganeti's queue (the node is held by a
    // delay job) is cancelled; the install request reports it.
    must(&["gnt-instance", "remove", "-f", instance]);
    must(&["gnt-debug", "delay", "--submit", "-n", NODE, "15"]);
    std::thread::scope(|s| {
        let install = s.spawn(|| realm.remctl(OWNER, &["guest", "install", "web1", "--json", PASSWORD]));
        let t = Instant::now();
        loop {
            let s = realm.remctl(OWNER, &["guest", "status", "web1", "--json"]).ok().json();
            if s["state"] == "installing" {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(12), "the install never showed as installing: {s}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let c = realm.remctl(STRANGER, &["guest", "cancel", "web1"]);
        assert_eq!(c.code, 3, "{c:?}");
        let c = realm.remctl(OWNER, &["guest", "cancel", "web1", "--json"]).ok().json();
        assert_eq!(c["state"], "cancelled", "{c}");
        let o = install.join().unwrap();
        assert_eq!(o.code, 1, "{o:?}");
        assert!(o.stdout.contains("canceled"), "{o:?}");
        let lines = steps::assert_steps(&o.stderr, &[&format!("submitting the Ganeti job (create of {instance})")]);
        assert!(lines.last().unwrap().1.starts_with("Ganeti job ") && lines.last().unwrap().1.ends_with(": canceled"), "{lines:?}");
    });
    let s = realm.remctl(OWNER, &["guest", "status", "web1", "--json"]).ok().json();
    assert_eq!((s["state"].as_str(), s["running"].as_bool()), (Some("cancelled"), Some(false)), "{s}");
    assert!(instances().is_empty());
    let _ = env.audit();

    // A DHCP machine, added by a remote admin with a size and no path: its
    // disk is disk 0 of its instance, of that size. Its instance's NIC has
    // no address, and the clone is told to ask the site's DHCP server
    // (which holds the MAC).
    let add = |vm: &str, mac: u8, size: &str| {
        let mac = format!("mac=00:16:3e:00:00:{mac:02x}");
        let owner = format!("owner={OWNER}");
        env.run(As::Remote(ADMIN), &["machine", "add", vm, &owner, "ip=dhcp", &mac, size, "template=tpl", "memory=512", "--json"], b"")
    };
    let j = add("web3", 0x21, "size=3G").ok().json();
    assert_eq!((j["volume"].as_str(), j["size"].as_u64(), j.get("disk")), (Some("instance"), Some(3 << 30), None), "{j}");
    let web3 = "web3.example.org";
    let j = realm.remctl(OWNER, &["guest", "install", "web3", "--no-start", "--json", PASSWORD]).ok().json();
    assert_eq!((j["action"].as_str(), j["instance"].as_str()), (Some("created"), Some(web3)), "{j}");
    let nic = must(&["gnt-instance", "list", "--no-headers", "--separator=|", "--units=m", "-o", "nic.ip/0,nic.mac/0,disk.size/0", web3]).stdout;
    assert_eq!(nic.trim(), "-|00:16:3e:00:00:21|3072", "{nic}");
    // A disk smaller than the template: refused before Ganeti sees a job.
    add("web5", 0x25, "size=1G").ok();
    let jobs_before = jobs();
    let o = realm.remctl(OWNER, &["guest", "install", "web5", PASSWORD]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("web5's disk (1024 MiB) is smaller than template tpl"), "{o:?}");
    assert_eq!(jobs(), jobs_before, "a refused install reached Ganeti");
    let seed = seed_of(&disk_of(web3));
    assert_eq!((seed.get("dhcp").map(String::as_str), seed.get("address")), (Some("yes"), None), "{seed:?}");
    // A reinstall keeps the NIC: one whose address is no longer the
    // machine's is refused, the instance left as it was.
    must(&["gnt-instance", "modify", "--net", "0:modify,ip=198.51.100.33", web3]);
    let o = realm.remctl(OWNER, &["guest", "install", "web3", "--no-start", PASSWORD]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("(address 198.51.100.33, MAC 00:16:3e:00:00:21) is not web3's as registered (address DHCP,"), "{o:?}");
    assert_eq!(seed_of(&disk_of(web3)), seed, "a refused reinstall changed the clone");
    must(&["gnt-instance", "remove", "-f", web3]);
    // IPv6 in cluster mode comes from the NIC's Ganeti network, not from
    // the registry: such a machine is refused before Ganeti sees a job.
    env.machine_with("web4", 34, None, &["ip6=2001:db8:1::34/64", "gateway6=fe80::1", "ip=", "netmask=", "gateway=", "nameserver=2001:db8:1::53", "template=tpl"]);
    let jobs_before = jobs();
    let o = realm.remctl(OWNER, &["guest", "install", "web4", PASSWORD]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("ip=dhcp"), "{o:?}");
    assert_eq!(jobs(), jobs_before, "a refused install reached Ganeti");
    assert!(instances().is_empty());
    let _ = env.audit();
    drop(realm);
}

/// An install's stderr: step lines only (times never going back), `first`
/// in order, then each change of the job's status, the last one `last`;
/// stdout one document, and no secret anywhere.
fn assert_job_steps(o: &Out, first: &[&str], last: &str) {
    assert_eq!(o.stdout.lines().count(), 1, "{o:?}");
    let lines = steps::assert_steps(&o.stderr, first);
    let job = last.rsplit_once(": ").unwrap().0;
    let statuses: Vec<&str> = lines.iter().filter_map(|(_, t)| t.strip_prefix(&format!("{job}: "))).collect();
    assert!(!statuses.is_empty() && statuses.windows(2).all(|w| w[0] != w[1]), "each change once: {lines:?}");
    assert_eq!(lines.last().unwrap().1, last, "{lines:?}");
    assert!(!o.stderr.contains(PASSWORD) && !o.stderr.contains("another password") && !o.stderr.contains("$6$"), "{o:?}");
}

/// The seed `create` writes (with the NIC's MAC) passes the first-boot
/// unit's own check, and a malformed MAC makes it refuse the whole seed.
#[test]
fn the_identity_unit_accepts_the_seed_with_a_mac_and_refuses_a_bad_one() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("gi-identity");
    fs::write(&script, template::IDENTITY_SCRIPT).unwrap();
    let net = guest_installer::types::Network::new("198.51.100.21", "255.255.255.0", "198.51.100.1", &["198.51.100.53"]).unwrap();
    let host = guest_installer::types::Hostname::parse("gi1").unwrap();
    let domain = guest_installer::types::DomainName::parse("ganeti.test").unwrap();
    let hash = guest_installer::secret::CryptHash::parse_hash(HASH1).unwrap();
    let root = guest_installer::rootlogin::RootLogin::new(vec![], guest_installer::secret::RootPassword::Hash(hash)).unwrap();
    let guest = guest_installer::guest::Guest { hostname: &host, domain: &domain, network: &net, root: &root };
    let id = template::Identity { guest: &guest, fs_uuid: "0f3c2b9e-8d1a-4c6e-9b7f-2a4d6e8f0a1b" };
    let good = template::render_seed_with_mac(&id, Some(Mac::parse("aa:00:00:12:34:56").unwrap()));
    assert!(good.contains("\nmac=aa:00:00:12:34:56\n"), "{good}");
    let check = |seed: &str| {
        let f = d.path().join("seed");
        fs::write(&f, seed).unwrap();
        let o = Command::new("/bin/sh").arg(&script).arg("--check").arg(&f).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(!out.contains("3rj1vTLX"), "the hash was echoed: {out}");
        (o.status.success(), out)
    };
    assert!(check(&good).0, "{}", check(&good).1);
    for bad in ["mac=AA:00:00:12:34:56", "mac=ab:00:00:12:34:56", "mac=aa:00:00:12:34", "mac=aa:00:00:12:34:56:78", "mac=aa-00-00-12-34-56"] {
        let (ok, out) = check(&good.replace("mac=aa:00:00:12:34:56", bad));
        assert!(!ok && out.contains("REFUSED"), "{bad}: {out}");
    }
    let (ok, out) = check(&good.replace("end\n", "mac=aa:00:00:12:34:56\nend\n"));
    assert!(!ok && out.contains("mac given twice"), "{out}");
}
