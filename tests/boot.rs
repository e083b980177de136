//! Boot tests (issue 3): the media we build really boot, under qemu (TCG on
//! these machines), with our binary and the qemu driver.
//!
//! 1. The real Debian installer (d-i netboot kernel/initrd laid out as an
//!    install CD) boots our isolinux label from the per-VM CD, loads our
//!    preseed and configures the machine's hostname and static IP without
//!    asking a question.
//! 2. A complete install followed to the end with a busybox "installer"
//!    (tests/support/iso/make-busybox-installer) that reads
//!    /cdrom/preseed.cfg, writes a marker to the VM's disk and powers off.
//! 3. The ISO-less route (boot=pv-initrd): qemu -kernel/-initrd with the
//!    per-VM initrd, and the xl PV config for it accepted by Xen's parser.
//!
//! The installer's own syslog and a few probes reach the serial console
//! through a test-only `preseed/early_command` appended to the template; no
//! Debian mirror is reachable (`restrict=on`), so d-i is stopped once it has
//! got past network configuration. Only bounds that kill a hung guest, no
//! timing assertions. The two d-i boots take a lock so that they do not
//! share the 2 CPUs.
//!
//! Needs (scripts/setup.sh): qemu-system-x86 xorriso isolinux syslinux-common
//! debian-installer-12-netboot-amd64 busybox-static cpio, a linux-image
//! package, and (for the xl config check) xen-utils, libxen-dev, gcc.

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A real SHA-512 crypt string, given on stdin: we know what must arrive.
const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

/// A d-i boot that has not got past network configuration by then is hung.
const DI_BOUND: Duration = Duration::from_secs(360);
/// The busybox installer powers off after ~5 s of guest time.
const FAKE_BOUND: Duration = Duration::from_secs(120);

/// Serialises the d-i boots (each keeps one CPU busy for ~1.5 min).
static DI_BOOT: Mutex<()> = Mutex::new(());

/// d-i lowmem: below 737 MiB (amd64) it shows a "Low memory mode" note
/// that waits for a key unless preseeded; the product default is 1024.
const DI_MEMORY: &str = "memory=1024";

/// Test-only template line: mirrors the installer's syslog to the serial
/// console and prints the hostname, IPv4 addresses and name servers every
/// few seconds. debconf's descriptors must be closed or d-i hangs.
const PROBE: &str = "d-i preseed/early_command string (echo GI-PROBE: early_command; \
tail -n +1 -f /var/log/syslog | while read -r l; do echo \"GI-SYSLOG: $l\"; done & \
while :; do echo \"GI-PROBE: hostname $(hostname)\"; \
ip -4 addr show | while read -r l; do echo \"GI-PROBE: ip $l\"; done; \
grep nameserver /etc/resolv.conf 2>/dev/null | while read -r l; do echo \"GI-PROBE: resolv $l\"; done; \
sleep 3; done) </dev/null >/dev/ttyS0 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &";

/// d-i's syslog line when main-menu starts the mirror step, i.e. network
/// configuration is over ("Checking the Debian archive mirror" on screen).
const MIRROR_STEP: &str = "Menu item 'choose-mirror' selected";

/// Console text for failure messages.
fn readable(text: &str) -> String {
    readable_tail(text, 60)
}

/// Some console line (d-i's screen output may precede it on the same line)
/// ends with `s`.
fn line_ends_with(text: &str, s: &str) -> bool {
    text.lines().any(|l| l.trim_end().ends_with(s))
}

fn status(env: &Env, vm: &str) -> serde_json::Value {
    env.run(As::Remote(OWNER), &["status", vm, "--json"], b"").ok().json()
}

/// The argument after `flag` in the recorded qemu command line.
fn qemu_arg(domain_cfg: &str, flag: &str) -> Option<String> {
    let mut lines = domain_cfg.lines();
    lines.by_ref().find(|l| *l == flag)?;
    lines.next().map(str::to_owned)
}

/// An Env with the qemu driver and the probe appended to its template.
fn qemu_env() -> Env {
    let env = Env::new();
    env.use_qemu();
    let tpl = env.root().join("preseed.cfg");
    let mut t = fs::read_to_string(&tpl).unwrap();
    t.push_str("\n### test only: the installer's syslog and probes on the serial console\n");
    t.push_str(PROBE);
    t.push('\n');
    fs::write(&tpl, t).unwrap();
    env
}

/// A console check: what it shows, and whether the console text holds it.
type Check = (String, Box<dyn Fn(&str) -> bool>);

/// What must show on the console for "d-i took our preseed", besides the
/// boot-route-specific checks.
fn di_took_preseed(hostname: &str, ip: &str) -> Vec<Check> {
    let (h, i) = (hostname.to_owned(), ip.to_owned());
    let i2 = i.clone();
    vec![
        (
            "d-i loaded /preseed.cfg".into(),
            Box::new(|c: &str| c.contains("preseed: successfully loaded preseed file from file:///preseed.cfg")),
        ),
        ("our template's early_command ran".into(), Box::new(|c: &str| line_ends_with(c, "GI-PROBE: early_command"))),
        (
            format!("netcfg configured the static address {ip}/24"),
            Box::new(move |c: &str| c.contains(&format!("executing: ip addr add {i}/24 broadcast 192.0.2.255"))),
        ),
        (
            format!("the interface has {ip}/24"),
            Box::new(move |c: &str| c.contains(&format!("GI-PROBE: ip inet {i2}/24"))),
        ),
        (
            format!("the hostname is {hostname}"),
            Box::new(move |c: &str| line_ends_with(c, &format!("GI-PROBE: hostname {h}"))),
        ),
        (
            "the name server is 192.0.2.53".into(),
            Box::new(|c: &str| line_ends_with(c, "GI-PROBE: resolv nameserver 192.0.2.53")),
        ),
        ("d-i reached the mirror step".into(), Box::new(|c: &str| c.contains(MIRROR_STEP))),
    ]
}

/// Polls the console until every check holds, failing at once if d-i shows
/// a question dialog before the mirror step, if the guest stops, or after
/// DI_BOUND. Returns the console text and how long it took.
fn watch_di(env: &Env, vm: &str, checks: &[Check]) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let c = console(env, vm);
        // Questions show as "[!!] Title" (critical) or "[!] Title" (high)
        // in d-i's dialogs. After the mirror step one is expected: no mirror
        // can be reached from the guest.
        let before_mirror = c.find(MIRROR_STEP).map_or(c.as_str(), |p| &c[..p]);
        if let Some(p) = before_mirror.find("[!!]").or_else(|| before_mirror.find("[!]")) {
            let dialog: String = before_mirror[p..].chars().take(600).collect();
            let dialog = guest_installer::console::clean_line(&dialog);
            panic!("d-i asked a question before the mirror step: {dialog}\nconsole:\n{}", readable(&c));
        }
        let missing: Vec<&str> = checks.iter().filter(|(_, f)| !f(&c)).map(|(d, _)| d.as_str()).collect();
        if missing.is_empty() {
            return (c, start.elapsed());
        }
        if start.elapsed() > DI_BOUND {
            panic!("after {DI_BOUND:?} still missing: {missing:?}\nconsole:\n{}", readable(&c));
        }
        let s = status(env, vm);
        assert_eq!(
            s["state"],
            "installing",
            "the guest stopped early: {s}\nmissing: {missing:?}\nconsole:\n{}",
            readable(&c)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Cancels and checks that the guest is gone and the media removed.
fn stop(env: &Env, guest: &Guest, media: &Path) {
    let out = env.run(As::Remote(OWNER), &["cancel", &guest.vm, "--json"], b"").ok().json();
    assert_eq!(out["state"], "cancelled");
    assert!(!guest.qemu_alive(), "qemu still runs after cancel");
    assert!(!media.exists(), "{} left behind", media.display());
}

/// Debian 13's own installer (netcfg 1.197, d-i 13's questions) takes the
/// same preseed template with no question and configures the network.
#[test]
fn real_debian_13_installer_takes_our_preseed_from_the_cd() {
    let env = qemu_env();
    env.import_iso("di13", &installer_iso_13());
    let img = env.run(As::Root, &["images", "--json"], b"").ok().json();
    assert_eq!(img["images"][0]["name"], "di13", "{img}");
    env.machine_with("d13", 3, Some("di13"), &[DI_MEMORY]);
    let _cpu = DI_BOOT.lock().unwrap_or_else(|e| e.into_inner());

    let j = env.run(As::Remote(OWNER), &["install", "d13", "hostname=gi-di-13", "--json"], PW_HASH.as_bytes()).ok().json();
    let guest = Guest::new(&env, "d13");
    assert_eq!(j["state"], "installing");
    let media = env.vm_file("d13", "install.qcow2");
    assert!(media.exists());
    let mut checks = di_took_preseed("gi-di-13", "192.0.2.13");
    // Debian 13's installer kernel, not 12's.
    checks.push(("the kernel is Debian 13's (6.12)".into(), Box::new(|c: &str| c.contains("Linux version 6.12."))));
    let (c, took) = watch_di(&env, "d13", &checks);
    eprintln!("BENCH d-i 13 from the CD: booted, took the preseed and reached the mirror step in {:.0} s", took.as_secs_f64());
    assert_eq!(progress_within(&env, "d13", "network configured", Duration::from_secs(90)), "network configured");
    assert!(!c.contains(PW_HASH), "the password hash reached the console");
    stop(&env, &guest, &media);
}

#[test]
fn real_installer_boots_our_label_and_takes_our_preseed_from_the_cd() {
    let env = qemu_env();
    env.import("di", false);
    env.machine_with("di1", 1, Some("di"), &[DI_MEMORY]);
    let _cpu = DI_BOOT.lock().unwrap_or_else(|e| e.into_inner());

    let out = env.run(As::Remote(OWNER), &["install", "di1", "hostname=gi-di-iso", "--json"], PW_HASH.as_bytes());
    let j = out.ok().json();
    let guest = Guest::new(&env, "di1");
    assert_eq!(j["state"], "installing");
    assert_eq!(j["boot"], "hvm-iso");
    // A remote owner is shown no host path; root finds the media here.
    assert!(j.get("media").is_none(), "{j}");
    let media = env.vm_file("di1", "install.qcow2");
    assert!(media.exists(), "{}", media.display());
    let domain = fs::read_to_string(env.vm_file("di1", "domain.cfg")).unwrap();
    let cd = domain.lines().find(|l| l.contains("media=cdrom")).unwrap_or_else(|| panic!("no CD in\n{domain}"));
    // qemu gets it as a descriptor; the record names the file.
    let fd: u32 = cd.strip_prefix("file=/dev/fdset/").and_then(|r| r.split(',').next()?.parse().ok()).unwrap_or_else(|| panic!("{cd}"));
    assert_eq!(qemu_fd_file(&domain, fd), Some(media.display().to_string()), "{domain}");
    assert!(domain.lines().any(|l| l == "-no-reboot"), "{domain}");
    assert!(domain.contains("mac=00:16:3e:00:00:01,restrict=on"), "{domain}");

    let mut checks = di_took_preseed("gi-di-iso", "192.0.2.11");
    checks.push((
        "isolinux loaded our preseed initrd".into(),
        Box::new(|c: &str| c.contains("Loading /install.amd/preseed.img")),
    ));
    checks.push((
        "the kernel was booted by our label".into(),
        Box::new(|c: &str| {
            c.lines().any(|l| {
                l.contains("Command line: BOOT_IMAGE=/install.amd/vmlinuz auto=true priority=critical")
                    && l.contains("initrd=/install.amd/initrd.gz,/install.amd/preseed.img")
            })
        }),
    ));
    let (c, took) = watch_di(&env, "di1", &checks);
    eprintln!("d-i from the CD: booted, took the preseed and reached the mirror step in {:.0} s", took.as_secs_f64());
    assert!(c.contains("ISOLINUX"), "not booted by isolinux");

    assert_eq!(progress_within(&env, "di1", "network configured", Duration::from_secs(90)), "network configured");
    let s = status(&env, "di1");
    assert_eq!(s["state"], "installing", "{s}");
    let tail = s["console_tail"].as_str().unwrap_or_else(|| panic!("no console_tail: {s}"));
    assert!(!tail.contains('\u{1b}') && !tail.chars().any(char::is_control), "console_tail not cleaned: {tail:?}");
    assert!(!c.contains(PW_HASH), "the password hash reached the console");
    stop(&env, &guest, &media);
}

#[test]
fn complete_install_with_the_busybox_installer_is_followed_to_the_end() {
    let env = qemu_env();
    // An importable image whose kernel and initrd are the fake installer's.
    env.import_busybox_installer(&[]);
    let disk = env.machine("fake1", 2, Some("fake"));

    let start = Instant::now();
    let j = env
        .run(As::Remote(OWNER), &["install", "fake1", "hostname=gi-fake-host", "--json"], PW_HASH.as_bytes())
        .ok()
        .json();
    let guest = Guest::new(&env, "fake1");
    assert_eq!(j["state"], "installing");
    assert_eq!(j["boot"], "hvm-iso");
    assert!(guest.qemu_alive(), "no qemu after install");
    let media = env.vm_file("fake1", "install.qcow2");
    assert!(media.exists());

    let first = status(&env, "fake1");
    assert_eq!(first["vm"], "fake1");
    assert_eq!(first["state"], "installing", "{first}");
    assert_eq!(first["image"], "fake");
    assert!(first["started_at"].is_string(), "{first}");
    assert!(first["finished_at"].is_null(), "{first}");
    assert!(first["elapsed_s"].is_u64(), "{first}");
    for k in ["console_tail", "progress", "reason"] {
        assert!(first.get(k).is_some(), "no {k}: {first}");
    }

    let mut seen_installing = 0;
    let last = loop {
        let s = status(&env, "fake1");
        if s["state"] != "installing" {
            break s;
        }
        seen_installing += 1;
        if start.elapsed() > FAKE_BOUND {
            panic!("still installing after {FAKE_BOUND:?}: {s}\nconsole:\n{}", readable(&console(&env, "fake1")));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let took = start.elapsed();
    eprintln!(
        "busybox installer: install → installed in {:.1} s ({seen_installing} polls while installing)",
        took.as_secs_f64()
    );
    let c = console(&env, "fake1");
    assert_eq!(last["state"], "installed", "{last}\nconsole:\n{}", readable(&c));
    assert!(!guest.qemu_alive(), "installed but qemu still runs");

    // It booted our label from the CD and read the CD's preseed.cfg.
    let cmdline =
        c.lines().find(|l| l.starts_with("GI-FAKE-INSTALLER: cmdline ")).unwrap_or_else(|| panic!("{}", readable(&c)));
    assert!(cmdline.contains("auto=true priority=critical"), "{cmdline}");
    assert!(cmdline.contains("initrd=/install.amd/initrd.gz,/install.amd/preseed.img"), "{cmdline}");
    assert!(line_ends_with(&c, "GI-FAKE-INSTALLER: done"), "{}", readable(&c));
    assert!(!c.contains("GI-FAKE-INSTALLER: error"), "{}", readable(&c));

    // The marker on the VM's disk carries exactly this request.
    let mut head = vec![0u8; 4096];
    fs::File::open(&disk).unwrap().read_exact(&mut head).unwrap();
    let expected = format!("GUEST-INSTALLER-MARKER v1\nhostname=gi-fake-host\nip=192.0.2.12\nhash={PW_HASH}\nEND\n");
    assert_eq!(String::from_utf8_lossy(&head[..expected.len()]), expected, "marker on {}", disk.display());
    assert!(head[expected.len()..].iter().all(|&b| b == 0), "marker block not NUL-padded");

    // The media (which held the hash) is gone, and the hash is nowhere in
    // the state dir.
    assert!(!media.exists(), "{} left behind", media.display());
    for f in ["install.qcow2", "install.iso", "initrd.gz", "qemu.pid"] {
        assert!(!env.vm_file("fake1", f).exists(), "{f} left behind");
    }
    for (p, (_, _, content)) in env.snapshot() {
        assert!(
            !content.windows(PW_HASH.len()).any(|w| w == PW_HASH.as_bytes()),
            "the hash is still in {}",
            p.display()
        );
    }

    // Status fields and the state file agree.
    let st: serde_json::Value = serde_json::from_slice(&fs::read(env.vm_file("fake1", "state.json")).unwrap()).unwrap();
    assert_eq!(st["phase"], "installed");
    let (started, finished) =
        (st["started_at"].as_u64().unwrap(), st["finished_at"].as_u64().expect("finished_at set"));
    assert!(finished >= started, "{st}");
    assert_eq!(last["elapsed_s"].as_u64(), Some(finished - started), "{last}");
    assert!(finished - started <= took.as_secs() + 2, "elapsed_s beyond what the test saw: {last}");
    assert!(last["started_at"].is_string() && last["finished_at"].is_string(), "{last}");
    assert_eq!(last["vm"], "fake1");
    assert_eq!(last["image"], "fake");
    assert!(last["reason"].is_null(), "{last}");
    assert_eq!(last["progress"], "finished", "{last}");
    let tail = last["console_tail"].as_str().unwrap_or_else(|| panic!("no console_tail: {last}"));
    assert!(!tail.trim().is_empty() && !tail.chars().any(char::is_control), "{tail:?}");
    // It stays installed, and a finished install cannot be cancelled.
    assert_eq!(status(&env, "fake1")["state"], "installed");
    assert_eq!(env.run(As::Remote(OWNER), &["cancel", "fake1"], b"").code, 2);
}

#[test]
fn real_installer_takes_our_preseed_from_the_per_vm_initrd_without_an_iso() {
    let env = qemu_env();
    env.import("di-xen", true);
    env.machine_with("pv1", 3, Some("di-xen"), &["boot=pv-initrd", DI_MEMORY]);
    let _cpu = DI_BOOT.lock().unwrap_or_else(|e| e.into_inner());

    let guest = Guest::new(&env, "pv1");
    let j =
        env.run(As::Remote(OWNER), &["install", "pv1", "hostname=gi-di-pv", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing");
    assert_eq!(j["boot"], "pv-initrd");
    let initrd = env.vm_file("pv1", "initrd.gz");
    assert!(initrd.exists() && j.get("media").is_none(), "{j}");
    let domain = fs::read_to_string(env.vm_file("pv1", "domain.cfg")).unwrap();
    // qemu reads copies through descriptors; the record names the files.
    let fd_of = |flag: &str| -> u32 {
        let a = qemu_arg(&domain, flag).unwrap_or_else(|| panic!("no {flag} in\n{domain}"));
        a.strip_prefix("/proc/self/fd/").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{flag} {a}"))
    };
    let kernel = qemu_fd_file(&domain, fd_of("-kernel")).unwrap_or_else(|| panic!("kernel not recorded in\n{domain}"));
    assert!(Path::new(&kernel).starts_with(env.state.join("images/di-xen")), "{kernel}");
    assert!(kernel.ends_with("/install.amd/xen/vmlinuz"), "{kernel}");
    assert_eq!(qemu_fd_file(&domain, fd_of("-initrd")).as_deref(), initrd.to_str());
    assert_eq!(qemu_arg(&domain, "-append").as_deref(), Some("auto=true priority=critical console=ttyS0,115200n8"));
    assert!(!domain.contains("media=cdrom") && !domain.contains("-cdrom"), "a CD in\n{domain}");
    let names: Vec<String> = fs::read_dir(env.state.join("vms/pv1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("install.")), "CD media built for a pv-initrd machine: {names:?}");

    let mut checks = di_took_preseed("gi-di-pv", "192.0.2.13");
    checks.push((
        "the kernel got exactly the driver's arguments".into(),
        Box::new(|c: &str| line_ends_with(c, "Command line: auto=true priority=critical console=ttyS0,115200n8")),
    ));
    let (c, took) = watch_di(&env, "pv1", &checks);
    eprintln!("d-i from -kernel/-initrd: took the preseed and reached the mirror step in {:.0} s", took.as_secs_f64());
    assert!(!c.contains("ISOLINUX") && !c.contains("BOOT_IMAGE="), "booted through a boot loader?\n{}", readable(&c));
    // d-i's syslog (mirrored by the test) reports the mirror step a moment
    // before its dialog reaches the console, which is what status reads.
    assert_eq!(progress_within(&env, "pv1", "network configured", Duration::from_secs(90)), "network configured");
    stop(&env, &guest, &initrd);
}

/// Polls `status` until its progress is `want` or `limit` has passed;
/// returns the last progress seen.
fn progress_within(env: &Env, vm: &str, want: &str, limit: Duration) -> String {
    let t0 = Instant::now();
    loop {
        let p = status(env, vm)["progress"].as_str().unwrap_or("").to_owned();
        if p == want || t0.elapsed() > limit {
            return p;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn pv_initrd_machine_gets_an_xl_pv_config_that_xen_accepts() {
    let env = Env::new(); // the xl stand-in
    env.import("di-xen", true);
    env.machine_with("pv2", 4, Some("di-xen"), &["boot=pv-initrd"]);
    let j = env
        .run(As::Remote(OWNER), &["install", "pv2", "hostname=gi-pv-xl", "--no-start", "--json"], PW_HASH.as_bytes())
        .ok()
        .json();
    assert_eq!(j["state"], "prepared");
    assert_eq!(j["boot"], "pv-initrd");
    let initrd = env.vm_file("pv2", "initrd.gz");
    assert!(initrd.exists() && j.get("media").is_none(), "{j}");
    assert!(!env.xl_running("pv2"));

    let cfg = env.vm_file("pv2", "domain.cfg");
    let parsed = check_xl_config(&cfg);
    let text = fs::read_to_string(&cfg).unwrap();
    let kernel = env.state.join("images/di-xen/tree/install.amd/xen/vmlinuz");
    for line in [
        "type = \"pv\"".to_owned(),
        format!("kernel = \"{}\"", kernel.display()),
        format!("ramdisk = \"{}\"", initrd.display()),
        "extra = \"auto=true priority=critical console=hvc0\"".to_owned(),
        "on_reboot = \"destroy\"".to_owned(),
    ] {
        assert!(text.lines().any(|l| l.trim() == line), "{line} missing in\n{text}");
    }
    assert!(!text.contains("hvm") && !text.contains("cdrom"), "{text}");
    // What Xen's parser made of it.
    let p: serde_json::Value = serde_json::from_str(&parsed).unwrap_or_else(|e| panic!("{e}: {parsed}"));
    let b = &p["b_info"];
    assert_eq!(b["kernel"], kernel.to_str().unwrap(), "{parsed}");
    assert_eq!(b["ramdisk"], initrd.to_str().unwrap(), "{parsed}");
    assert_eq!(b["cmdline"], "auto=true priority=critical console=hvc0", "{parsed}");
    assert!(parsed.contains("00:16:3e:00:00:04"), "{parsed}");

    // The ramdisk is the pristine initrd with our preseed appended as
    // /preseed.cfg in a gzip'd newc archive.
    let pristine = fs::read(env.state.join("images/di-xen/tree/install.amd/xen/initrd.gz")).unwrap();
    let ours = fs::read(&initrd).unwrap();
    assert!(
        ours.len() > pristine.len() && ours[..pristine.len()] == pristine[..],
        "not the pristine initrd + an archive"
    );
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&ours[pristine.len()..]).read_to_end(&mut raw).unwrap();
    let mut r = cpio::NewcReader::new(&raw[..]).unwrap();
    assert_eq!(r.entry().name(), "preseed.cfg");
    let mut preseed = String::new();
    r.read_to_string(&mut preseed).unwrap();
    for line in [
        "d-i netcfg/get_hostname string gi-pv-xl",
        "d-i netcfg/get_ipaddress string 192.0.2.14",
        &format!("d-i passwd/root-password-crypted password {PW_HASH}"),
    ] {
        assert!(preseed.lines().any(|l| l == line), "{line} missing in\n{preseed}");
    }
}

/// The network words of an IPv6-only machine.
const IPV6_ONLY: [&str; 6] = ["ip=", "netmask=", "gateway=", "ip6=2001:db8:1::14/64", "gateway6=2001:db8:1::1", "nameserver=2001:db8:1::53"];

/// Installs `vm` (registered with `IPV6_ONLY`) and watches the real
/// installer take its address with the prefix length in
/// netcfg/get_ipaddress (no netmask question), its gateway in the prefix
/// and an IPv6 name server, and get past network configuration without
/// asking anything; then stops it.
fn installs_ipv6_only(env: &Env, vm: &str, media: &str) {
    let _cpu = DI_BOOT.lock().unwrap_or_else(|e| e.into_inner());
    let guest = Guest::new(env, vm);
    let j = env.run(As::Remote(OWNER), &["install", vm, "hostname=gi-di-six", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing");
    let checks: Vec<Check> = vec![
        ("our template's early_command ran".into(), Box::new(|c: &str| line_ends_with(c, "GI-PROBE: early_command"))),
        (
            "netcfg configured the static address 2001:db8:1::14/64".into(),
            Box::new(|c: &str| c.contains("executing: ip addr add 2001:db8:1::14/64 dev ")),
        ),
        (
            "netcfg added the default route by 2001:db8:1::1".into(),
            Box::new(|c: &str| c.contains("executing: ip route add default via 2001:db8:1::1")),
        ),
        ("the hostname is gi-di-six".into(), Box::new(|c: &str| line_ends_with(c, "GI-PROBE: hostname gi-di-six"))),
        ("the name server is 2001:db8:1::53".into(), Box::new(|c: &str| line_ends_with(c, "GI-PROBE: resolv nameserver 2001:db8:1::53"))),
        ("d-i reached the mirror step".into(), Box::new(|c: &str| c.contains(MIRROR_STEP))),
    ];
    let (_, took) = watch_di(env, vm, &checks);
    eprintln!("BENCH {vm}: d-i, IPv6 only: took the preseed and reached the mirror step in {:.0} s", took.as_secs_f64());
    assert_eq!(progress_within(env, vm, "network configured", Duration::from_secs(90)), "network configured");
    stop(env, &guest, &env.vm_file(vm, media));
}

/// An IPv6-only machine on Debian 12's installer (the PV-initrd route).
#[test]
fn real_installer_configures_an_ipv6_only_machine_from_our_preseed() {
    let env = qemu_env();
    env.import("di-xen", true);
    let mut words = vec!["boot=pv-initrd", DI_MEMORY];
    words.extend(IPV6_ONLY);
    env.machine_with("six1", 4, Some("di-xen"), &words);
    installs_ipv6_only(&env, "six1", "initrd.gz");
}

/// The same on Debian 13's installer (netcfg 1.197), from the CD.
#[test]
fn real_debian_13_installer_configures_an_ipv6_only_machine_from_our_preseed() {
    let env = qemu_env();
    env.import_iso("di13", &installer_iso_13());
    let mut words = vec![DI_MEMORY];
    words.extend(IPV6_ONLY);
    env.machine_with("six13", 5, Some("di13"), &words);
    installs_ipv6_only(&env, "six13", "install.qcow2");
}
