//! Golden templates and per-VM identity (issue 7), with the real programs:
//! mmdebstrap builds one template per test run (cached under
//! CARGO_TARGET_TMPDIR, keyed by `template::build_key()`), two clones of it
//! boot under qemu (TCG here) and each shows, on its serial console, a
//! login prompt with its own hostname and the identity lines the
//! template's first-boot unit prints (address, machine-id, SSH host key
//! fingerprint, filesystem UUID), which must differ between the two.
//!
//! Needs (scripts/setup.sh): mmdebstrap, e2fsprogs, qemu-system-x86,
//! qemu-utils, and a reachable Debian archive (the config's mirror,
//! the host's own apt sources' archive in the harness) for the one template build.

mod common;

use common::*;
use guest_installer::template;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";
const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH+2i5AKkiRgfmm31jnpzTRX9C1c7OzuKqgSZ7WAoSvs bob@laptop (work) #1";
const KEY_B: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCWW442Sk8tS3PtptHNJOApGIoQPJm2z8x2Mu5h/SkuyKWeL3fN9062H0DW+DLf1zO6xufaeD33mVZr07JGAzX0= carol@desk";

/// A clone that has not shown its login prompt by then is hung (measured:
/// ~50 s each under TCG, two at once on two cores).
const BOOT_BOUND: Duration = Duration::from_secs(420);

fn tail(text: &str) -> String {
    readable_tail(text, 40)
}

/// `gi-identity: KEY=VALUE` lines from a console.
fn identity_lines(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in text.split(['\n', '\r']) {
        let l = guest_installer::console::clean_line(l);
        if let Some(rest) = l.split("gi-identity: ").nth(1) {
            if let Some((k, v)) = rest.split_once('=') {
                out.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    out
}

fn status(env: &Env, vm: &str) -> serde_json::Value {
    env.run(As::Remote(OWNER), &["status", vm, "--json"], b"").ok().json()
}

#[test]
fn two_clones_of_one_template_boot_with_their_own_identity() {
    let env = Env::new();
    env.use_qemu();
    add_template(&env);
    let t = env.run(As::Remote(OWNER), &["templates", "--json"], b"").ok().json();
    assert_eq!(t["templates"][0]["name"], "tpl", "{t}");
    assert_eq!(t["templates"][0]["suite"], "bookworm", "{t}");

    // One clone on each kind of volume: a qcow2 file takes an overlay, a
    // raw file a sparse copy.
    let vms = [("clone1", 1u8, "gi-clone-a"), ("clone2", 2, "gi-clone-b")];
    let volumes = [env.volume_qcow2("clone1"), env.volume_sized("clone2", 3 << 30)];
    // One root password as a crypt hash, one in clear (hashed by the
    // program with a fresh salt).
    let passwords = [PW_HASH, "clone-b's own root password"];
    let methods = ["qcow2-overlay", "sparse-copy"];
    let mut guards = Vec::new();
    let mut requested = BTreeMap::new();
    for (i, (vm, n, host)) in vms.into_iter().enumerate() {
        env.machine_with(vm, n, None, &["memory=512", &format!("disk={}", volumes[i].display())]);
        let t0 = Instant::now();
        let o = env.run(
            As::Remote(OWNER),
            &["install", vm, &format!("hostname={host}"), "template=tpl", "--json"],
            passwords[i].as_bytes(),
        );
        let wall = t0.elapsed();
        guards.push(Guest::new(&env, vm));
        let j = o.ok().json();
        assert_eq!(j["state"], "installing", "{j}");
        assert_eq!(j["template"], "tpl");
        assert_eq!(j["clone_method"], methods[i], "{j}");
        eprintln!(
            "BENCH {vm}: clone + identity seed (host side, in the program) {:.1} ms; whole install request incl. qemu start {:.0} ms",
            j["clone_s"].as_f64().unwrap() * 1000.0,
            wall.as_secs_f64() * 1000.0
        );
        requested.insert(vm, t0);
        // The seed holds the password hash: 0600, and nowhere else.
        let seed = env.vm_file(vm, "identity.img");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&seed).unwrap().permissions().mode() & 0o777, 0o600);
        let cfg = fs::read_to_string(env.vm_file(vm, "domain.cfg")).unwrap();
        // The firmware boots the boot code in the clone's disk: nothing of the host's.
        assert!(!cfg.contains("-kernel") && cfg.contains("-boot\nc\n") && cfg.contains(&format!(",opaque={}\n", volumes[i].display())), "{cfg}");
    }

    // Both boot at once; wait for each login prompt with its own hostname.
    let deadline = Instant::now() + BOOT_BOUND;
    let mut prompt_at: BTreeMap<&str, Duration> = BTreeMap::new();
    while prompt_at.len() < vms.len() {
        for (vm, _, host) in vms {
            if prompt_at.contains_key(vm) {
                continue;
            }
            let c = console(&env, vm);
            assert!(!c.contains(template::REFUSED_LINE), "{vm} refused its seed:\n{}", tail(&c));
            if c.contains(&format!("{host} login:")) {
                prompt_at.insert(vm, requested[vm].elapsed());
                eprintln!("BENCH {vm}: request -> login prompt '{host} login:' {:.1} s (TCG)", requested[vm].elapsed().as_secs_f64());
            }
        }
        if Instant::now() > deadline {
            let mut msg = String::new();
            for (vm, _, _) in vms {
                msg.push_str(&format!("--- {vm}:\n{}\n", tail(&console(&env, vm))));
            }
            panic!("no login prompt within {BOOT_BOUND:?}\n{msg}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    let tpl_uuid = fs_uuid(&root_fs(&env.state.join("templates/tpl/disk.img")));
    let mut seen: Vec<BTreeMap<String, String>> = Vec::new();
    let volume_bytes = [4u64 << 30, 3 << 30];
    for (i, (vm, n, host)) in vms.into_iter().enumerate() {
        let c = console(&env, vm);
        let id = identity_lines(&c);
        assert_eq!(id.get("hostname").map(String::as_str), Some(host), "{id:?}\n{}", tail(&c));
        assert_eq!(
            id.get("address").map(String::as_str),
            Some(format!("192.0.2.{}/24 gateway=192.0.2.1", 10 + n).as_str()),
            "{id:?}"
        );
        let mid = &id["machine-id"];
        assert!(mid.len() == 32 && mid.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
        assert!(id["ssh-host-key"].starts_with("SHA256:"), "{id:?}");
        assert_eq!(id["fs-uuid"].len(), 36, "{id:?}");
        assert_ne!(id["fs-uuid"], tpl_uuid, "the clone kept the template's filesystem UUID");
        // The root filesystem grew from the template's 2 GiB to fill the
        // machine's volume (less ext4's own overhead).
        let root_bytes: u64 = id["root-bytes"].parse().unwrap();
        assert!(root_bytes > volume_bytes[i] / 10 * 9, "{vm}: root filesystem {root_bytes} bytes on a {} byte volume", volume_bytes[i]);
        assert!(c.contains(template::APPLIED_LINE));
        // Installed once the identity is applied; the seed is then gone.
        let s = status(&env, vm);
        assert_eq!(s["state"], "installed", "{s}");
        assert_eq!(s["running"], true, "{s}");
        // The owner learns the guest's host key for known_hosts.
        assert_eq!(s["ssh_host_key"], id["ssh-host-key"].as_str(), "{s}");
        assert!(!env.vm_file(vm, "identity.img").exists(), "the seed (password hash) outlived its use");
        seen.push(id);
    }
    for k in ["machine-id", "ssh-host-key", "fs-uuid", "hostname", "address"] {
        assert_ne!(seen[0][k], seen[1][k], "{k} is the same on both clones");
    }
    // Root's password hash, read from each clone's own disk (a copy, its
    // journal replayed): the one its request gave.
    let hashes: Vec<String> = volumes.iter().map(|v| root_hash_on(v)).collect();
    assert_eq!(hashes[0], PW_HASH, "clone1's root hash");
    assert!(hashes[1].starts_with("$6$") && hashes[1] != PW_HASH, "{}", hashes[1]);
    assert!(sha_crypt::sha512_check(passwords[1], &hashes[1]).is_ok(), "clone2's root hash does not verify its password");
    // The template itself is untouched by its clones.
    assert_eq!(fs_uuid(&root_fs(&env.state.join("templates/tpl/disk.img"))), tpl_uuid);
    drop(guards);
    for (vm, _, _) in vms {
        assert!(Guest::new(&env, vm).pid().is_none(), "qemu for {vm} still runs");
    }
}

/// Root's password field in /etc/shadow on a clone's volume, read from a
/// raw copy whose journal is replayed (the guest still runs; its identity
/// unit synced before the login prompt).
fn root_hash_on(volume: &Path) -> String {
    let d = tempfile::tempdir().unwrap();
    let raw = d.path().join("raw.img");
    let fmt = if volume.extension().is_some_and(|e| e == "qcow2") { "qcow2" } else { "raw" };
    sh(Command::new("qemu-img").args(["convert", "-U", "-f", fmt, "-O", "raw"]).arg(volume).arg(&raw));
    let _ = Command::new("e2fsck").args(["-fy", "-E", "journal_only"]).arg(root_fs(&raw)).output().unwrap();
    let shadow = sh(Command::new("debugfs").arg("-R").arg("cat /etc/shadow").arg(root_fs(&raw)));
    let line = shadow.lines().find(|l| l.starts_with("root:")).unwrap_or_else(|| panic!("no root in /etc/shadow:\n{shadow}"));
    line.split(':').nth(1).unwrap().to_owned()
}

fn fs_uuid(img: &str) -> String {
    let out = sh(Command::new("tune2fs").arg("-l").arg(img));
    out.lines().find_map(|l| l.strip_prefix("Filesystem UUID:")).unwrap().trim().to_owned()
}

#[test]
fn template_manifest_records_suite_packages_digest_kernel() {
    let dir = template_fixture();
    let m: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("tpl/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["suite"], "bookworm");
    assert_eq!(m["image"], "deb12");
    assert_eq!(m["mirror"], format!("http://{}{}", host_mirror().0, host_mirror().1));
    let pkgs: Vec<&str> = m["packages"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    for want in ["openssh-server ", "systemd-sysv ", "linux-image-amd64 "] {
        assert!(pkgs.iter().any(|p| p.starts_with(want)), "{want} not in {pkgs:?}");
    }
    for f in ["root", "kernel", "initrd"] {
        let name = m[f]["file"].as_str().unwrap();
        assert_eq!(sha256(&dir.join("tpl").join(name)), m[f]["sha256"].as_str().unwrap(), "{f}");
    }
    // Sealed: nothing unique to a guest in the image.
    let img = root_fs(&dir.join("tpl/disk.img"));
    let cat = |p: &str| {
        let o = Command::new("debugfs").arg("-R").arg(format!("cat {p}")).arg(&img).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let ls = |p: &str| {
        let o = Command::new("debugfs").arg("-R").arg(format!("ls -l {p}")).arg(&img).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(cat("/etc/machine-id"), "");
    assert!(!ls("/etc/ssh").contains("ssh_host_"), "{}", ls("/etc/ssh"));
    assert!(!ls("/var/lib/systemd").contains("random-seed"));
    assert!(cat("/etc/shadow").lines().any(|l| l.starts_with("root:!:")), "root is not locked");
    assert!(ls("/usr/local/sbin").contains("gi-identity"));
    // The initrd finds the root disk under qemu (virtio) and Xen PV (blkfront).
    let initrd = sh(Command::new("lsinitramfs").arg(dir.join("tpl/initrd.img")));
    for m in ["virtio_blk.ko", "xen-blkfront.ko", "ext4.ko"] {
        assert!(initrd.contains(m), "{m} not in the template's initrd");
    }
    let features = sh(Command::new("dumpe2fs").arg("-h").arg(&img));
    assert!(features.contains("metadata_csum_seed"), "{features}");
    assert!(features.contains(&format!("Filesystem volume name:   {}", template::ROOT_LABEL)), "{features}");
}

/// The guest side refuses a malformed seed as a whole (checked on the host
/// with the very script baked into the template).
#[test]
fn identity_unit_refuses_malformed_seeds() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("gi-identity");
    fs::write(&script, template::IDENTITY_SCRIPT).unwrap();
    let check = |seed: &str| {
        let f = d.path().join("seed");
        fs::write(&f, seed).unwrap();
        let o = Command::new("/bin/sh").arg(&script).arg("--check").arg(&f).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(!out.contains("abcdefgh$3rj1"), "the hash was echoed: {out}");
        (o.status.success(), out)
    };
    let net = guest_installer::types::Network::new("192.0.2.11", "255.255.255.0", "192.0.2.1", &["192.0.2.53", "192.0.2.54"]).unwrap();
    let hostname = guest_installer::types::Hostname::parse("gi-clone-a").unwrap();
    let domain = guest_installer::types::DomainName::parse("example.org").unwrap();
    let hash = guest_installer::secret::CryptHash::parse_hash(PW_HASH).unwrap();
    use guest_installer::rootlogin::RootLogin;
    use guest_installer::secret::RootPassword;
    let keys: Vec<_> = [KEY_A, KEY_B].iter().map(|k| guest_installer::sshkey::PublicKey::parse_line(k).unwrap()).collect();
    let seed_for = |root: &RootLogin| {
        let guest = guest_installer::guest::Guest { hostname: &hostname, domain: &domain, network: &net, root };
        template::render_seed(&template::Identity { guest: &guest, fs_uuid: "0f3c2b9e-8d1a-4c6e-9b7f-2a4d6e8f0a1b" })
    };
    let good = seed_for(&RootLogin::new(keys.clone(), RootPassword::Hash(hash.clone())).unwrap());
    assert!(good.contains(&format!("\nssh_key={KEY_A}\nssh_key={KEY_B}\nssh_password=no\n")), "{good}");
    let (ok, out) = check(&good);
    assert!(ok, "{out}\n{good}");
    // The other two shapes: keys and a locked root; a password alone.
    let locked = seed_for(&RootLogin::new(keys.clone(), RootPassword::Locked).unwrap());
    assert!(locked.contains("\nroot_locked=yes\n") && !locked.contains("root_hash"), "{locked}");
    let pw_only = seed_for(&RootLogin::new(vec![], RootPassword::Hash(hash.clone())).unwrap());
    assert!(pw_only.contains("\nssh_password=yes\n") && !pw_only.contains("ssh_key"), "{pw_only}");
    for s in [&locked, &pw_only] {
        let (ok, out) = check(s);
        assert!(ok, "{out}\n{s}");
    }
    // The disk as the guest reads it: zero padding stripped.
    assert!(template::seed_disk(&good).unwrap().len().is_multiple_of(512));
    // 32 of the largest keys we take fit the seed disk.
    let big = format!("ssh_key=ssh-rsa {}\n", "A".repeat(8000)).repeat(32);
    assert!(template::seed_disk(&good.replace("ssh_password=no\n", &(big + "ssh_password=no\n"))).is_some());
    let ssh_key_a = format!("ssh_key={KEY_A}");
    let with_key = |line: &str| good.replace(&ssh_key_a, line);

    let bad: Vec<(&str, String)> = vec![
        ("newline in hostname", good.replace("hostname=gi-clone-a\n", "hostname=gi-clone-a\nroot_hash=$6$x$y\n")),
        ("shell in hostname", good.replace("hostname=gi-clone-a", "hostname=a$(reboot)")),
        ("upper case", good.replace("hostname=gi-clone-a", "hostname=GI")),
        ("carriage return", good.replace("hostname=gi-clone-a", "hostname=gi-clone-a\r")),
        ("unknown key", good.replace("end\n", "late_command=x\nend\n")),
        ("no end", good.replace("end\n", "")),
        ("after end", good.clone() + "hostname=x\n"),
        ("bad magic", good.replace(template::SEED_MAGIC, "guest-installer-identity 4")),
        ("version 1 magic", good.replace(template::SEED_MAGIC, template::SEED_MAGIC_V1)),
        ("bad address", good.replace("address=192.0.2.11", "address=192.0.2.256")),
        ("leading zero", good.replace("address=192.0.2.11", "address=192.0.2.011")),
        ("bad prefix", good.replace("prefix=24", "prefix=33")),
        ("quote in hash", good.replace("$6$abcdefgh$", "$6$abc'defgh$")),
        ("space in hash", good.replace("$6$abcdefgh$", "$6$abc defgh$")),
        ("not a crypt hash", good.replace(PW_HASH, "password")),
        ("bad uuid", good.replace("0f3c2b9e-", "0f3c2b9g-")),
        ("missing gateway", good.replace("gateway=192.0.2.1\n", "")),
        ("four nameservers", good.replace("end\n", "nameserver=1.1.1.1\nnameserver=1.0.0.1\nend\n")),
        ("empty", String::new()),
        // Hostile key lines: each could reach authorized_keys or the shell.
        ("quote in a key comment", with_key(&format!("{ssh_key_a}\"x"))),
        ("backslash in a key comment", with_key(&format!("{ssh_key_a}\\"))),
        ("shell in a key comment", with_key(&format!("{ssh_key_a} $(reboot)"))),
        ("backquote in a key comment", with_key(&format!("{ssh_key_a} `id`"))),
        ("tab in a key", with_key(&ssh_key_a.replacen(' ', "\t", 1))),
        ("options before a key", with_key(&format!("ssh_key=command=\"/bin/sh\" {KEY_A}"))),
        ("restrict before a key", with_key(&format!("ssh_key=restrict {KEY_A}"))),
        ("unknown key type", with_key(&ssh_key_a.replace("ssh-ed25519", "ssh-dss"))),
        ("not base64", with_key(&ssh_key_a.replace("AAAAC3", "AA!AC3"))),
        ("no blob", with_key("ssh_key=ssh-ed25519 ")),
        ("two spaces before a comment", with_key(&ssh_key_a.replace(" bob@", "  bob@"))),
        ("trailing space", with_key(&format!("{ssh_key_a} "))),
        ("an overlong key", with_key(&format!("ssh_key=ssh-rsa {}", "A".repeat(8200)))),
        ("33 keys", good.replace("ssh_password=no\n", &format!("{}ssh_password=no\n", format!("{ssh_key_a}\n").repeat(31)))),
        ("root locked and a hash", good.replace("ssh_password=no\n", "root_locked=yes\nssh_password=no\n")),
        ("root locked without a key", locked.replace(&format!("ssh_key={KEY_A}\nssh_key={KEY_B}\n"), "")),
        ("root locked with password login", locked.replace("ssh_password=no", "ssh_password=yes")),
        ("password login with keys", good.replace("ssh_password=no", "ssh_password=yes")),
        ("no ssh_password", good.replace("ssh_password=no\n", "")),
        ("ssh_password twice", good.replace("ssh_password=no\n", "ssh_password=no\nssh_password=no\n")),
        ("ssh_password maybe", good.replace("ssh_password=no", "ssh_password=maybe")),
        ("root_locked=no", locked.replace("root_locked=yes", "root_locked=no")),
        ("neither hash nor locked", locked.replace("root_locked=yes\n", "")),
    ];
    // Version 3: IPv6, dual-stack and DHCP, as the host renders them.
    let v3_for = |words: &[&str]| {
        let get = |k: &str| words.iter().find_map(|w| w.strip_prefix(k).and_then(|r| r.strip_prefix('=')));
        let ns: Vec<&str> = words.iter().filter_map(|w| w.strip_prefix("nameserver=")).collect();
        let f = guest_installer::types::NetworkFields { ip: get("ip"), netmask: get("netmask"), gateway: get("gateway"), ip6: get("ip6"), gateway6: get("gateway6"), nameservers: &ns };
        let n = guest_installer::types::Network::from_fields(&f).unwrap();
        let root = RootLogin::new(keys.clone(), RootPassword::Locked).unwrap();
        let guest = guest_installer::guest::Guest { hostname: &hostname, domain: &domain, network: &n, root: &root };
        template::render_seed(&template::Identity { guest: &guest, fs_uuid: "0f3c2b9e-8d1a-4c6e-9b7f-2a4d6e8f0a1b" })
    };
    let six = v3_for(&["ip6=2001:db8::11/64", "gateway6=fe80::1", "nameserver=2001:db8::53"]);
    let dual = v3_for(&["ip=192.0.2.11", "netmask=255.255.255.0", "gateway=192.0.2.1", "ip6=2001:db8::11/64", "gateway6=2001:db8::1", "nameserver=192.0.2.53", "nameserver=2001:db8::53"]);
    let dhcp = v3_for(&["ip=dhcp"]);
    assert!(six.starts_with(&format!("{}\n", template::SEED_MAGIC_V3)) && six.contains("\naddress6=2001:db8::11\nprefix6=64\ngateway6=fe80::1\n"), "{six}");
    assert!(dhcp.contains("\ndhcp=yes\n") && !dhcp.contains("address"), "{dhcp}");
    for s in [&six, &dual, &dhcp] {
        let (ok, out) = check(s);
        assert!(ok, "{out}\n{s}");
    }
    let bad_v3: Vec<(&str, String)> = vec![
        ("IPv6 in a version 2 seed", six.replace(template::SEED_MAGIC_V3, template::SEED_MAGIC)),
        ("dhcp in a version 2 seed", dhcp.replace(template::SEED_MAGIC_V3, template::SEED_MAGIC)),
        ("upper-case IPv6", six.replace("address6=2001:db8::11", "address6=2001:DB8::11")),
        ("dotted IPv6", six.replace("address6=2001:db8::11", "address6=::ffff:192.0.2.1")),
        ("two ::", six.replace("address6=2001:db8::11", "address6=2001::db8::11")),
        ("short IPv6", six.replace("address6=2001:db8::11", "address6=2001:db8:11")),
        ("prefix 129", six.replace("prefix6=64", "prefix6=129")),
        ("no gateway6", six.replace("gateway6=fe80::1\n", "")),
        ("no address at all", six.replace("address6=2001:db8::11\nprefix6=64\ngateway6=fe80::1\n", "")),
        ("IPv4 name server without IPv4", six.replace("nameserver=2001:db8::53", "nameserver=192.0.2.53")),
        ("dhcp with an address", dhcp.replace("dhcp=yes\n", "dhcp=yes\naddress6=2001:db8::11\nprefix6=64\ngateway6=fe80::1\n")),
        ("dhcp with a name server", dhcp.replace("dhcp=yes\n", "dhcp=yes\nnameserver=192.0.2.53\n")),
        ("dhcp=no", dhcp.replace("dhcp=yes", "dhcp=no")),
        ("half an IPv4 network", dual.replace("gateway=192.0.2.1\n", "")),
        ("shell in address6", six.replace("address6=2001:db8::11", "address6=$(reboot)")),
    ];
    for (what, seed) in bad.into_iter().chain(bad_v3) {
        let (ok, out) = check(&seed);
        assert!(!ok, "{what}: accepted\n{seed}");
        assert!(out.contains("gi-identity: REFUSED"), "{what}: {out}");
    }
}

#[test]
fn template_build_is_local_admin_only_and_a_failed_build_leaves_nothing() {
    let env = Env::with_config_extra("mmdebstrap = \"/bin/false\"");
    env.import("deb12", false);
    let o = env.run(As::Remote(ADMIN), &["template", "build", "deb12", "--json"], b"");
    assert_eq!(o.code, 3, "{o:?}");
    let o = env.run(As::Root, &["template", "build", "nosuch", "--json"], b"");
    assert_eq!(o.code, 4, "{o:?}");
    let before = env.snapshot();
    let o = env.run(As::Root, &["template", "build", "deb12", "name=t1", "--json"], b"");
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.json()["error"]["kind"], "failed");
    let after = env.snapshot();
    let new: Vec<_> = after.keys().filter(|k| !before.contains_key(*k) && !k.starts_with(env.state.join("locks"))).collect();
    assert!(new.is_empty(), "left behind: {new:?}");
    let t = env.run(As::Remote(STRANGER), &["templates", "--json"], b"").ok().json();
    assert_eq!(t["templates"], serde_json::json!([]));
    // install template=T of an unknown template: not found, nothing made.
    let vol = env.machine("vm1", 1, None);
    let o = env.run(As::Remote(OWNER), &["install", "vm1", "template=nosuch", "--json"], PW_HASH.as_bytes());
    assert_eq!(o.code, 4, "{o:?}");
    assert_untouched(&vol);
}

/// Under Xen a whole-disk clone of a machine installed as HVM (the
/// default) boots its own disk's boot code (`boot = "c"`); one with
/// `boot=pv-initrd` runs pvgrub2, which reads the clone's own grub.cfg.
/// Both configs are read back by Xen's own parser.
#[test]
fn clone_gets_an_xl_pv_config_that_xen_accepts_and_cancel_removes_it() {
    let env = Env::new(); // the xl stand-in
    add_template(&env);
    let hvm_vol = env.volume_qcow2("xh1");
    env.machine_with("xh1", 4, None, &[&format!("disk={}", hvm_vol.display())]);
    env.run(As::Remote(OWNER), &["install", "xh1", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes()).ok();
    let hvm = check_xl_config(&env.vm_file("xh1", "domain.cfg"));
    let hvm: serde_json::Value = serde_json::from_str(&hvm).unwrap();
    assert_eq!(hvm["c_info"]["type"], "hvm", "{hvm}");
    assert_eq!(hvm["b_info"]["type.hvm"]["boot"], "c", "{hvm}");
    assert!(hvm["b_info"]["kernel"].is_null(), "the host gave an HVM clone a kernel: {hvm}");
    assert_eq!(hvm["disks"][1]["pdev_path"], env.vm_file("xh1", "identity.img").to_str().unwrap(), "{hvm}");

    let vol = env.volume_qcow2("xc1");
    env.machine_with("xc1", 3, None, &[&format!("disk={}", vol.display()), "boot=pv-initrd"]);
    let j = env
        .run(As::Remote(OWNER), &["install", "xc1", "template=tpl", "hostname=gi-xen", "--no-start", "--json"], PW_HASH.as_bytes())
        .ok()
        .json();
    assert_eq!(j["state"], "prepared");
    let cfg = env.vm_file("xc1", "domain.cfg");
    let o = Command::new(repo().join("tests/support/xl/check-xl-config"))
        .arg(&cfg)
        .env("XL_SUPPORT_BUILD_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("xl-support"))
        .output()
        .unwrap();
    assert!(o.status.success(), "Xen's parser refused {}: {}", cfg.display(), String::from_utf8_lossy(&o.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = &parsed["b_info"];
    let tpl = env.state.join("templates/tpl");
    // pvgrub2 boots the kernel the clone's own grub.cfg names: the host
    // gives no kernel, initrd or command line of its own.
    assert_eq!(b["kernel"], "/usr/lib/grub-xen/grub-x86_64-xen.bin", "{parsed}");
    assert!(b["ramdisk"].is_null() && b["cmdline"].is_null(), "{parsed}");
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(&format!("format=qcow2, vdev=xvda, access=rw, target={}", vol.display())), "{text}");
    assert!(text.contains(&format!("format=raw, vdev=xvdb, access=ro, target={}", env.vm_file("xc1", "identity.img").display())), "{text}");
    assert!(text.contains("on_reboot = \"restart\""), "{text}");

    // The machine's qcow2 volume is now an overlay that reads as the
    // template's image (qemu-img agrees).
    let info = sh(Command::new("qemu-img").args(["info", "--output=json"]).arg(&vol));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["backing-filename"], tpl.join("disk.img").to_str().unwrap(), "{info}");
    assert_eq!(info["backing-filename-format"], "raw", "{info}");
    // The size the admin gave the volume is kept (the template is 2 GiB).
    assert_eq!(info["virtual-size"], 4u64 << 30, "{info}");

    // Started (the stand-in), then cancelled: the half-made clone goes.
    let j = env.run(As::Remote(OWNER), &["install", "xc1", "template=tpl", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing");
    assert!(env.xl_running("xc1"));
    assert_eq!(status(&env, "xc1")["state"], "installing");
    env.run(As::Remote(OWNER), &["cancel", "xc1", "--json"], b"").ok();
    assert!(!env.xl_running("xc1"));
    assert!(!env.vm_file("xc1", "identity.img").exists(), "the seed is left after cancel");
    assert_wiped(&vol);
    assert_eq!(status(&env, "xc1")["state"], "cancelled");

    // With no console log (xenconsoled not logging guests) nothing can be
    // known: a clone that stops is installed, with a reason, and its
    // volume is never wiped on a guess.
    let console_log = env.root().join("console/guest-xc1.log");
    env.run(As::Remote(OWNER), &["install", "xc1", "template=tpl", "--json"], PW_HASH.as_bytes()).ok();
    assert!(!console_log.exists());
    env.xl_guest_finishes("xc1");
    let s = status(&env, "xc1");
    assert_eq!(s["state"], "installed", "{s}");
    assert!(s["reason"].as_str().unwrap().contains("could not be confirmed"), "{s}");
    assert!(!env.vm_file("xc1", "identity.img").exists());
    let info = sh(Command::new("qemu-img").args(["info", "--output=json"]).arg(&vol));
    assert!(info.contains("disk.img"), "the clone's volume was replaced: {info}");
    let o = Command::new("qemu-img").args(["dd", "-f", "qcow2", "-O", "raw", "bs=1M", "count=2"]).arg(format!("if={}", vol.display()))
        .arg(format!("of={}", env.root().join("head").display())).status().unwrap();
    assert!(o.success());
    assert!(same_prefix(&env.root().join("head"), &tpl.join("disk.img"), 2 << 20), "the clone was wiped");

    // With a console log that never shows the identity applied, the clone
    // that stopped is failed and wiped.
    env.run(As::Remote(OWNER), &["install", "xc1", "template=tpl", "--json"], PW_HASH.as_bytes()).ok();
    fs::write(&console_log, "[    0.000000] Linux version 6.1.0\r\nKernel panic - not syncing\r\n").unwrap();
    env.xl_guest_finishes("xc1");
    let s = status(&env, "xc1");
    assert_eq!(s["state"], "failed", "{s}");
    assert!(!env.vm_file("xc1", "identity.img").exists());
    assert_wiped(&vol);
}

/// The SSH host key a clone's identity unit printed is recorded when its
/// install is (under the machine's lock), and `status` keeps showing it
/// after `stop` and `start`, when that boot's console is gone; a line the
/// guest prints later changes nothing. (Under the xl stand-in, with the
/// console log written by hand; tests/ssh_login.rs does it for real.)
#[test]
fn the_ssh_host_key_is_recorded_and_outlives_the_first_boots_console() {
    let env = Env::new();
    add_template(&env);
    let vol = env.volume_qcow2("hk1");
    env.machine_with("hk1", 4, None, &[&format!("disk={}", vol.display())]);
    let human = env.run(As::Remote(OWNER), &["install", "hk1", "template=tpl"], PW_HASH.as_bytes()).ok().stdout.clone();
    assert!(human.contains("\n  root login: password, over SSH and on the console (no SSH key installed)\n"), "{human}");
    let console_log = env.root().join("console/guest-hk1.log");
    let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    fs::write(&console_log, format!("gi-identity: hostname=hk1\r\ngi-identity: ssh-host-key={fp}\r\ngi-identity: applied\r\nhk1 login: ")).unwrap();
    let s = status(&env, "hk1");
    assert_eq!((s["state"].as_str(), s["ssh_host_key"].as_str()), (Some("installed"), Some(fp)), "{s}");
    let st: serde_json::Value = serde_json::from_slice(&fs::read(env.vm_file("hk1", "state.json")).unwrap()).unwrap();
    assert_eq!(st["ssh_host_key"], fp, "{st}");
    env.run(As::Remote(OWNER), &["stop", "hk1", "--force", "--json"], b"").ok();
    // The next boot's console: no identity lines, and a guest that prints
    // a host key of its own choosing.
    fs::write(&console_log, "gi-identity: ssh-host-key=SHA256:AAAAztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\r\nhk1 login: ").unwrap();
    env.run(As::Remote(OWNER), &["start", "hk1", "--json"], b"").ok();
    let s = status(&env, "hk1");
    assert_eq!((s["running"].as_bool(), s["ssh_host_key"].as_str()), (Some(true), Some(fp)), "{s}");
    let human = env.run(As::Remote(OWNER), &["status", "hk1"], b"").ok().stdout.clone();
    assert!(human.contains(&format!("  ssh host key: {fp} (ed25519)\n")), "{human}");
    // A new install forgets it until its own identity applies.
    env.run(As::Remote(OWNER), &["stop", "hk1", "--force", "--json"], b"").ok();
    env.run(As::Remote(OWNER), &["install", "hk1", "template=tpl", "--json"], PW_HASH.as_bytes()).ok();
    assert_eq!(status(&env, "hk1")["ssh_host_key"], serde_json::Value::Null);
    env.run(As::Remote(OWNER), &["cancel", "hk1", "--json"], b"").ok();
}

/// A template built before the identity seed said how root logs in has
/// a first-boot unit that would refuse the seeds made now (its clones
/// would power off), and one built before templates were whole disks is
/// a bare filesystem no firmware boots: both are refused before anything
/// is made, with what to do.
#[test]
fn a_template_with_the_old_identity_unit_or_no_boot_code_is_refused_with_how_to_rebuild_it() {
    let env = Env::new();
    add_template(&env);
    let dir = env.state.join("templates/tpl");
    let mpath = dir.join("manifest.json");
    let good: serde_json::Value = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
    assert_eq!(good["identity_version"], template::IDENTITY_VERSION);
    assert_eq!(good["layout"], "whole-disk");
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let vol = env.volume_qcow2("old1");
    env.machine_with("old1", 5, None, &[&format!("disk={}", vol.display())]);
    for (field, says) in [("identity_version", "identity unit"), ("layout", "bare filesystem")] {
        let mut m = good.clone();
        m.as_object_mut().unwrap().remove(field);
        fs::remove_file(&mpath).unwrap();
        fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        let (before, vol_before) = (env.snapshot(), fs::read(&vol).unwrap());
        let o = env.run(As::Remote(OWNER), &["install", "old1", "template=tpl", "--json"], PW_HASH.as_bytes());
        assert_eq!(o.code, 1, "{field}: {o:?}");
        let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains("guest-installer template build deb12 name=") && msg.contains(says), "{field}: {msg}");
        assert_same_tree(&before, &env.snapshot(), "a refused install changed the state dir");
        assert!(fs::read(&vol).unwrap() == vol_before, "{field}: the volume was written to");
    }
}

/// What a killed build leaves (a hidden build directory, with something
/// still mounted in it as mmdebstrap's /proc would be) is unmounted and
/// removed by the next build, without touching what was mounted.
#[test]
fn next_build_unmounts_and_clears_a_killed_builds_leftovers() {
    let env = Env::with_config_extra("mmdebstrap = \"/bin/false\"");
    env.import("deb12", false);
    let left = env.state.join(".template-t1-killed");
    let mnt = left.join("tree/proc");
    fs::create_dir_all(&mnt).unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("precious"), "keep me").unwrap();
    sh(Command::new("mount").arg("--bind").arg(outside.path()).arg(&mnt));
    // Undone however the test ends (before `outside` goes).
    let _bound = Mounted(mnt.clone());
    let o = env.run(As::Root, &["template", "build", "deb12", "name=t1", "--json"], b"");
    let still = fs::read_to_string("/proc/self/mountinfo").unwrap().contains(mnt.to_str().unwrap());
    assert!(!still, "the leftover mount is still there");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(!left.exists(), "leftover build directory not removed");
    assert_eq!(fs::read_to_string(outside.path().join("precious")).unwrap(), "keep me");
}

/// Fail closed, for real: a clone whose seed was tampered with (a second
/// line smuggled into the hostname) refuses it at first boot and powers
/// off without ever offering a login prompt. The clone is prepared by the
/// program (`--no-start`), the seed edited, and the guest started with the
/// very command line the qemu driver recorded.
#[test]
fn clone_with_a_tampered_seed_refuses_it_and_powers_off() {
    let env = Env::new();
    env.use_qemu();
    add_template(&env);
    let vol = env.volume_qcow2("bad1");
    env.machine_with("bad1", 5, None, &["memory=512", &format!("disk={}", vol.display())]);
    env.run(As::Remote(OWNER), &["install", "bad1", "template=tpl", "hostname=gi-bad", "--no-start", "--json"], PW_HASH.as_bytes())
        .ok();
    let seed_path = env.vm_file("bad1", "identity.img");
    let mut seed = fs::read(&seed_path).unwrap();
    let text_len = seed.iter().position(|b| *b == 0).unwrap();
    let text = String::from_utf8(seed[..text_len].to_vec()).unwrap();
    let evil = text.replace("hostname=gi-bad\n", "hostname=gi-bad\nhostname=evil\n");
    assert_ne!(evil, text);
    seed[..evil.len()].copy_from_slice(evil.as_bytes());
    fs::write(&seed_path, &seed).unwrap();

    let cfg = fs::read_to_string(env.vm_file("bad1", "domain.cfg")).unwrap();
    let (program, args) = qemu_by_hand(&cfg, &env.state.join("vms/bad1"));
    sh(Command::new(&program).args(&args));
    let guard = Guest::new(&env, "bad1");
    let deadline = Instant::now() + BOOT_BOUND;
    while guard.pid().is_some() {
        assert!(Instant::now() < deadline, "the guest did not power off:\n{}", tail(&console(&env, "bad1")));
        std::thread::sleep(Duration::from_millis(500));
    }
    let c = console(&env, "bad1");
    assert!(c.contains("gi-identity: REFUSED: hostname given twice"), "{}", tail(&c));
    assert!(!c.contains("login:"), "a login prompt was offered:\n{}", tail(&c));
    assert!(!c.contains(template::APPLIED_LINE));
    assert!(!c.contains("evil"), "{}", tail(&c));

    // Had the program started it, `status` would find it stopped with a
    // refusal on its console: failed, and the clone (and seed) removed.
    let st_path = env.vm_file("bad1", "state.json");
    let mut st: serde_json::Value = serde_json::from_slice(&fs::read(&st_path).unwrap()).unwrap();
    st["phase"] = "installing".into();
    st["started_at"] = st["prepared_at"].clone();
    fs::write(&st_path, serde_json::to_vec(&st).unwrap()).unwrap();
    let s = status(&env, "bad1");
    assert_eq!(s["state"], "failed", "{s}");
    assert!(s["reason"].as_str().unwrap().contains("refused its identity seed"), "{s}");
    assert!(!env.vm_file("bad1", "identity.img").exists(), "the seed is left after a refused seed");
    assert_wiped(&vol);
}

/// A volume nothing was ever written to: a sparse file with no blocks.
fn assert_untouched(vol: &Path) {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(vol).unwrap().blocks(), 0, "{} was written to", vol.display());
}

/// The first 2 MiB of the volume, as a guest sees it, read as zeros: no
/// partition table, no boot code, no root superblock; the clone neither
/// mounts nor boots.
fn assert_wiped(vol: &Path) {
    let d = tempfile::tempdir().unwrap();
    let head = d.path().join("head");
    let fmt = if vol.extension().is_some_and(|e| e == "qcow2") { "qcow2" } else { "raw" };
    sh(Command::new("qemu-img")
        .args(["dd", "-f", fmt, "-O", "raw", "bs=1M", "count=2"])
        .arg(format!("if={}", vol.display()))
        .arg(format!("of={}", head.display())));
    let b = fs::read(&head).unwrap();
    assert_eq!(b.len(), 2 << 20);
    assert!(b.iter().all(|x| *x == 0), "the start of {} still holds the clone", vol.display());
    let o = Command::new("blkid").arg("-p").arg(&head).output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("ext4"));
}

/// True if the first `len` bytes of `a` and `b` are equal (cmp(1): GiB
/// in a debug-built test would be slow).
fn same_prefix(a: &Path, b: &Path, len: u64) -> bool {
    Command::new("cmp").arg("-s").arg(format!("--bytes={len}")).arg(a).arg(b).status().unwrap().success()
}

/// The state a clone request may change (the template dir is read-only
/// and GiB: reading it twice per check would dominate the test).
fn vm_state(env: &Env) -> BTreeMap<PathBuf, (u32, u32, Vec<u8>)> {
    let mut s = BTreeMap::new();
    for d in ["vms", "machines", "locks"] {
        if env.state.join(d).exists() {
            s.extend(snapshot(&env.state.join(d)));
        }
    }
    s
}

/// A loop device over a sparse file, detached when dropped.
struct Loop(String);
impl Loop {
    fn new(backing: &Path) -> Loop {
        // With its partitions (a clone is a whole disk: `DEVp1` is its root).
        Loop(sh(Command::new("losetup").args(["--find", "--show", "--partscan"]).arg(backing)).trim().to_owned())
    }
}
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(format!("{}p1", self.0)).output();
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// On a block device (a loop device here, an LV on a dom0) the clone is a
/// sparse copy that reads back as the template byte for byte; a mounted
/// volume is refused as busy with nothing changed; cancel wipes the clone.
#[test]
fn clone_onto_a_block_device_is_a_sparse_copy_and_a_mounted_one_is_refused() {
    let env = Env::new();
    add_template(&env);
    let backing = env.volume_sized("blk1", 3 << 30);
    let dev = Loop::new(&backing);
    env.machine_with("blk1", 6, None, &[&format!("disk={}", dev.0)]);
    let j = env
        .run(As::Remote(OWNER), &["install", "blk1", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes())
        .ok()
        .json();
    assert_eq!(j["clone_method"], "sparse-copy", "{j}");
    assert_eq!(j["disk"], dev.0.as_str());
    let root = env.state.join("templates/tpl/disk.img");
    let len = fs::metadata(&root).unwrap().len();
    assert!(same_prefix(Path::new(&dev.0), &root, len), "the device does not read as the template");
    let cfg = fs::read_to_string(env.vm_file("blk1", "domain.cfg")).unwrap();
    assert!(cfg.contains(&format!("format=raw, vdev=xvda, access=rw, target={}", dev.0)), "{cfg}");

    // Mounted (as an admin might have it): busy, and nothing changes.
    let mnt = tempfile::tempdir().unwrap();
    // (The kernel reads the new table when the device is opened for it.)
    let _ = Command::new("partx").args(["-a", &dev.0]).output();
    sh(Command::new("mount").args(["-o", "ro"]).arg(format!("{}p1", dev.0)).arg(mnt.path()));
    let before = vm_state(&env);
    let o = env.run(As::Remote(OWNER), &["install", "blk1", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes());
    let _ = Command::new("umount").arg(mnt.path()).status();
    assert_eq!(o.code, 5, "{o:?}");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("in use"), "{o:?}");
    assert_same_tree(&before, &vm_state(&env), "a refused clone changed the state dir");
    assert!(same_prefix(Path::new(&dev.0), &root, len));

    env.run(As::Remote(OWNER), &["cancel", "blk1", "--json"], b"").ok();
    assert!(!env.vm_file("blk1", "identity.img").exists());
    assert_wiped(Path::new(&dev.0));
}

/// A machine's default template is what `install VM` clones; a volume
/// smaller than the template is refused before anything is written.
#[test]
fn default_template_and_a_volume_too_small() {
    let env = Env::new();
    add_template(&env);
    let o = env.run(As::Remote(ADMIN), &["machine", "add", "x", "owner=bob@EXAMPLE.ORG", "ip=192.0.2.9", "netmask=255.255.255.0",
        "gateway=192.0.2.1", "nameserver=192.0.2.53", "mac=00:16:3e:00:00:09", "size=4G", "template=nosuch", "--json"], b"");
    assert_eq!(o.code, 4, "{o:?}");

    let small = env.machine_with("small1", 7, None, &["template=tpl"]);
    let before = vm_state(&env);
    let o = env.run(As::Remote(OWNER), &["install", "small1", "--json"], PW_HASH.as_bytes());
    assert_eq!(o.code, 1, "{o:?}");
    let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("less than the template") && msg.contains("grow"), "{msg}");
    assert_same_tree(&before, &vm_state(&env), "a refused clone changed the state dir");
    assert_untouched(&small);

    env.import("deb12", false);
    let vol = env.volume_qcow2("dflt1");
    env.machine_with("dflt1", 8, Some("deb12"), &["template=tpl", &format!("disk={}", vol.display())]);
    let show = env.run(As::Remote(ADMIN), &["machine", "show", "dflt1", "--json"], b"").ok().json();
    assert_eq!(show["template"], "tpl", "{show}");
    let j = env.run(As::Remote(OWNER), &["install", "dflt1", "--no-start", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["template"], "tpl", "{j}");
    assert_eq!(j["clone_method"], "qcow2-overlay", "{j}");
    assert_eq!(status(&env, "dflt1")["template"], "tpl");
}

/// A clone request killed at random points (mid-copy onto a raw volume,
/// mid-overlay onto a qcow2 one) leaves any state file whole and the lock
/// free; a retry succeeds, clears the overlay's temporaries and leaves a
/// volume that reads as the template.
#[test]
fn clone_killed_at_random_points_then_retried() {
    let env = Env::new();
    add_template(&env);
    let raw = env.volume_sized("kc1", 3 << 30);
    let qcow = env.volume_qcow2("kc2");
    env.machine_with("kc1", 9, None, &[&format!("disk={}", raw.display())]);
    env.machine_with("kc2", 10, None, &[&format!("disk={}", qcow.display())]);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for trial in 0..16 {
        let (vm, span_ms) = if trial % 2 == 0 { ("kc1", 1500) } else { ("kc2", 40) };
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis((rng >> 33) % span_ms);
        kill_after(&env, &["install", vm, "template=tpl", "--no-start"], PW_HASH.as_bytes(), delay);
        if let Ok(b) = fs::read(env.vm_file(vm, "state.json")) {
            serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_else(|e| panic!("trial {trial}: torn state.json: {e}"));
        }
    }
    let root = env.state.join("templates/tpl/disk.img");
    let len = fs::metadata(&root).unwrap().len();
    // As a kill mid-overlay leaves it (whether or not one of the kills
    // above did).
    fs::write(qcow.parent().unwrap().join(".kc2.qcow2.gi-clone-planted"), b"half an overlay").unwrap();
    for vm in ["kc1", "kc2"] {
        let j = env.run(As::Remote(OWNER), &["install", vm, "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes()).ok().json();
        assert_eq!(j["state"], "prepared", "{j}");
    }
    // Both volumes live in one directory: what a killed overlay write
    // left there is gone once its machine's request has run again.
    let left: Vec<String> = fs::read_dir(qcow.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".gi-clone-"))
        .collect();
    assert!(left.is_empty(), "leftovers {left:?}");
    assert!(same_prefix(&raw, &root, len), "the raw volume does not read as the template");
    let cmp = Command::new("qemu-img").args(["compare", "-q", "-f", "qcow2", "-F", "raw"]).arg(&qcow).arg(&root).status().unwrap();
    assert!(cmp.success(), "the qcow2 volume does not read as the template");
}

/// The volume's filesystem runs out of space. A sparse copy that fails
/// half-way says so (exit 1), its seed goes and the half copy is wiped
/// (a punched hole: wiping needs no space). An overlay that cannot be
/// written leaves the volume byte for byte as it was, and no temporary
/// beside it.
#[test]
fn full_volume_filesystem_fails_cleanly() {
    let env = Env::new();
    add_template(&env);
    let dir = env.root().join("vols");
    let _fs = Tmpfs::mount(&dir, "64m");
    let raw = dir.join("full1.img");
    fs::File::create(&raw).unwrap().set_len(3 << 30).unwrap();
    env.machine_with("full1", 11, None, &[&format!("disk={}", raw.display())]);
    let o = env.run(As::Remote(OWNER), &["install", "full1", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes());
    assert_eq!(o.code, 1, "{o:?}");
    let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("No space left"), "{msg}");
    assert!(!env.vm_file("full1", "identity.img").exists(), "the seed outlived a failed clone");
    assert!(!env.vm_file("full1", "state.json").exists(), "a failed clone was recorded as made");
    assert_wiped(&raw);

    // A qcow2 volume on a filesystem with no block left.
    fs::remove_file(&raw).unwrap();
    let qcow = dir.join("full2.qcow2");
    sh(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&qcow).arg("4G"));
    env.machine_with("full2", 12, None, &[&format!("disk={}", qcow.display())]);
    let mut f = fs::File::create(dir.join("filler")).unwrap();
    while std::io::Write::write_all(&mut f, &[0x55u8; 1 << 16]).is_ok() {}
    drop(f);
    let vol_before = fs::read(&qcow).unwrap();
    let o = env.run(As::Remote(OWNER), &["install", "full2", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes());
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("No space left"), "{o:?}");
    assert!(fs::read(&qcow).unwrap() == vol_before, "the qcow2 volume changed");
    let left: Vec<String> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!env.vm_file("full2", "identity.img").exists());
}

/// A volume the pool made (`size=`, raw or qcow2) takes a clone as any
/// other does: a sparse copy that reads as the template, or an overlay;
/// either way it stays root's, mode 0600.
#[test]
fn clone_onto_pool_volumes() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    add_template(&env);
    let raw = env.machine_with("pool1", 13, None, &["size=3G"]);
    assert_eq!(raw, env.pool_dir().join("pool1.img"));
    let j = env.run(As::Remote(OWNER), &["install", "pool1", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["clone_method"], "sparse-copy", "{j}");
    let root = env.state.join("templates/tpl/disk.img");
    assert!(same_prefix(&raw, &root, fs::metadata(&root).unwrap().len()), "the pool volume does not read as the template");

    env.set_volumes(&format!("kind = \"file\"\ndir = \"{}\"\nformat = \"qcow2\"", env.pool_dir().display()));
    let qcow = env.machine_with("pool2", 14, None, &["size=4G"]);
    let j = env.run(As::Remote(OWNER), &["install", "pool2", "template=tpl", "--no-start", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["clone_method"], "qcow2-overlay", "{j}");
    let cmp = Command::new("qemu-img").args(["compare", "-q", "-f", "qcow2", "-F", "raw"]).arg(&qcow).arg(&root).status().unwrap();
    assert!(cmp.success(), "the qcow2 pool volume does not read as the template");
    for v in [&raw, &qcow] {
        let m = fs::metadata(v).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o600, 0), "{}", v.display());
    }
}
