//! Golden templates: clone + identity against the template's size, and
//! request → login prompt (through the boot loader, against a direct
//! kernel boot, and `start` of a stopped clone) against the installer
//! path, measured in one run. Run it with
//!
//!     cargo bench --bench template
//!
//! Part 1, clone + identity (no guest started): synthetic templates of
//! `GI_BENCH_TEMPLATE_SIZES` MiB (default `1024,4096`): a disk made
//! like a real template's whole disk (`template::disk::make`) with
//! a quarter of its size in random data, plus a manifest. For each size
//! the release binary runs `install VM template=T --no-start` as remctld
//! would (an owner's REMOTE_USER, the hash on stdin, qemu driver) onto two
//! machines: one with a `*.qcow2` volume (qcow2 overlay) and one with a
//! raw sparse file (sparse copy). It prints the program's own `clone_s`
//! (clone + identity seed + domain config) and the process's wall time,
//! medians of `GI_BENCH_RUNS` (default 11), the ratio to the issue's
//! 300 ms target, and the largest/smallest size ratio (1.0 = flat). The
//! same templates are then put on a loop-mounted XFS made with reflink
//! (`target/tmp/bench-template/xfs.img`, mounted for the run only), beside
//! a raw volume: there the clone is a reflink (skipped with
//! `GI_BENCH_XFS=0`).
//!
//! Part 2, under TCG (skipped with `GI_BENCH_BOOT=0`): the real minimal
//! template (the tests' cached one under `target/tmp/gi-fixtures/` if its
//! key matches, else `template build` with mmdebstrap, ~2 min, cached
//! here), in `GI_BENCH_BOOT_ROUNDS` (default 2) rounds, each timed to
//! `HOST login:` on the serial console: (a) a clone booted the old way,
//! the template's kernel and initrd given to qemu directly (kept here
//! only, to compare: the request is `--no-start`, then the recorded qemu
//! command line with the kernel instead of `-boot c`); (b) a clone started by
//! the request, through the boot code in its disk (GRUB reading its own
//! grub.cfg); (c) that clone stopped cleanly (`stop`), then `start`ed.
//! The ratios (b)/(a) and (c)/(a) are printed. Then the preseeded installer
//! for the same image (our CD, real d-i), timed from the request to the
//! installer's first contact with the mirror ("Checking the Debian archive
//! mirror"), where it would start downloading the base system. The
//! installer cannot go further here (no reachable mirror carries the
//! installer's udebs), so that figure is a lower bound of the installer
//! path; the real-hardware figure for the whole install is ~20
//! minutes. Each guest is killed as soon as its figure is taken; both
//! boot alone, with the same memory and vCPUs.
//!
//! Cache: `target/tmp/bench-template/` (~2.5 GB for the default sizes).
//! Asserts nothing about time.

mod common;

use common::{bin, env_num, ms, repo, stats, Stats};
use guest_installer::template::{self, FileDigest, Manifest, Suite};
use guest_installer::types::{ImageName, TemplateName};
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OWNER: &str = "bob@EXAMPLE.ORG";
const ADMIN: &str = "alice/admin@EXAMPLE.ORG";
const HASH: &str = "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";
/// The figures.
const TARGET_CLONE_MS: f64 = 300.0;
const REAL_HARDWARE_INSTALL_S: f64 = 20.0 * 60.0;
/// Bounds on waiting for a guest (not assertions: a figure not reached is
/// reported as such).
const BOOT_BOUND: Duration = Duration::from_secs(600);

fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-template")
}

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A state dir and config of its own, the qemu driver, and a socket
/// draining the audit records.
struct Env {
    dir: PathBuf,
    config: PathBuf,
    _audit: UnixDatagram,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir = cache().join(name);
        let state = dir.join("state");
        fs::create_dir_all(&state).unwrap();
        let mut p = fs::metadata(&dir).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o700);
        fs::set_permissions(&dir, p.clone()).unwrap();
        fs::set_permissions(&state, p).unwrap();
        let sock = dir.join("audit.sock");
        let _ = fs::remove_file(&sock);
        let audit = UnixDatagram::bind(&sock).unwrap();
        audit.set_nonblocking(true).unwrap();
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "state_dir = \"{state}\"\npreseed_template = \"{tpl}\"\nadmins = [\"{ADMIN}\"]\ndomain = \"example.org\"\n\
                 [mirror]\nhost = \"{mirror_host}\"\ndirectory = \"{mirror_dir}\"\n\
                 [hypervisor]\ndriver = \"qemu\"\nqemu_net = \"user\"\n\
                 [timeouts]\ntemplate_s = 1800\n\
                 [audit]\nsyslog_socket = \"{sock}\"\n",
                state = state.display(),
                tpl = repo().join("etc/preseed.cfg").display(),
                sock = sock.display(),
                mirror_host = common::shared::host_mirror().0,
                mirror_dir = common::shared::host_mirror().1,
            ),
        )
        .unwrap();
        // The program trusts a config only root can change.
        fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        Env { dir, config, _audit: audit }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn run(&self, remote: Option<&str>, args: &[&str], stdin: &[u8]) -> (i32, String, Duration) {
        use std::io::{Read, Write};
        let mut buf = [0u8; 4096];
        while self._audit.recv(&mut buf).is_ok() {}
        let mut c = Command::new(bin());
        c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("GUEST_INSTALLER_CONFIG", &self.config);
        if let Some(r) = remote {
            c.env("REMOTE_USER", r);
        }
        c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let t0 = Instant::now();
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let code = child.wait().unwrap().code().unwrap_or(-1);
        (code, out, t0.elapsed())
    }

    fn ok(&self, remote: Option<&str>, args: &[&str], stdin: &[u8]) -> (serde_json::Value, Duration) {
        let (code, out, took) = self.run(remote, args, stdin);
        assert_eq!(code, 0, "{args:?}: {out}");
        (serde_json::from_str(&out).unwrap_or(serde_json::Value::Null), took)
    }

    fn machine(&self, vm: &str, n: u8, disk: &Path, extra: &[&str]) {
        let _ = self.run(Some(ADMIN), &["machine", "remove", vm], b"");
        let mut a = common::shared::machine_add(OWNER, vm, n, &format!("disk={}", disk.display()));
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        // disk= names a host path: root on the host imports it.
        self.ok(None, &a, b"");
    }
}

/// A synthetic template of `mib` MiB with a quarter of it in random data,
/// made as the builder makes a template's whole disk; cached.
fn synthetic_template(env: &Env, mib: u64) -> TemplateName {
    let name = TemplateName::parse(&format!("syn{mib}")).unwrap();
    let dir = env.state().join("templates").join(name.as_str());
    if template::load(&env.state().join("templates"), &name).is_ok() {
        return name;
    }
    eprintln!("bench: making a {mib} MiB synthetic template");
    let work = env.dir.join(format!("work-{mib}"));
    let _ = fs::remove_dir_all(&work);
    let tree = work.join("tree");
    fs::create_dir_all(tree.join("usr/lib/data")).unwrap();
    for i in 0..(mib / 4 / 64).max(1) {
        sh(Command::new("head").args(["-c", "64M", "/dev/urandom"]).stdout(fs::File::create(tree.join(format!("usr/lib/data/{i}"))).unwrap()));
    }
    fs::create_dir_all(work.join("out")).unwrap();
    let root = work.join("out/disk.img");
    let grub = template::disk::Grub { mkimage: Path::new("/usr/bin/grub-mkimage"), modules: Path::new("/usr/lib/grub/i386-pc"), timeout: Duration::from_secs(60) };
    let mkfs = ["-t", "ext4", "-L", template::ROOT_LABEL, "-O", "metadata_csum_seed"];
    template::disk::make(&root, mib << 20, &tree, Path::new("/usr/sbin/mke2fs"), &mkfs, &grub, Duration::from_secs(600)).unwrap();
    for f in ["vmlinuz", "initrd.img"] {
        fs::write(work.join("out").join(f), f).unwrap();
    }
    let digest = |f: &str| {
        let p = work.join("out").join(f);
        let (sha256, bytes) = guest_installer::image::sha256_file(&p).unwrap();
        FileDigest { file: f.into(), bytes, sha256 }
    };
    let m = Manifest {
        name: name.clone(),
        image: Some(ImageName::parse("bench").unwrap()),
        suite: Suite::parse("bookworm").unwrap(),
        mirror: "http://mirror.example.org/debian".into(),
        builder: "synthetic (bench)".into(),
        built_at: 0,
        build_key: template::build_key(),
        packages: vec!["none 0".into()],
        root: digest("disk.img"),
        kernel: digest("vmlinuz"),
        initrd: digest("initrd.img"),
        kernel_version: guest_installer::types::KernelVersion::parse("0").unwrap(),
        identity_version: template::IDENTITY_VERSION,
        layout: template::DiskLayout::WholeDisk,
    };
    fs::write(work.join("out/manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    fs::create_dir_all(dir.parent().unwrap()).unwrap();
    fs::rename(work.join("out"), &dir).unwrap();
    fs::remove_dir_all(&work).unwrap();
    name
}

struct CloneFig {
    mib: u64,
    method: String,
    clone: Stats,
    wall: Stats,
    volume_kib: u64,
}

/// `with_qcow`: a qcow2 volume besides the raw one.
fn bench_clones(env: &Env, sizes: &[u64], runs: usize, with_qcow: bool) -> Vec<CloneFig> {
    let mut out = Vec::new();
    for (i, &mib) in sizes.iter().enumerate() {
        let t = synthetic_template(env, mib);
        let n = 2 * i as u8;
        let qcow = env.dir.join(format!("ovl{mib}.qcow2"));
        let raw = env.dir.join(format!("raw{mib}.img"));
        sh(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&qcow).arg(format!("{}M", mib * 2)));
        fs::File::create(&raw).unwrap().set_len((mib * 2) << 20).unwrap();
        let mut volumes = vec![(format!("raw{mib}"), &raw, n + 1)];
        if with_qcow {
            volumes.insert(0, (format!("ovl{mib}"), &qcow, n));
        }
        for (vm, disk, k) in volumes {
            env.machine(&vm, k, disk, &[]);
            // Page cache warm for every run alike.
            sh(Command::new("cat").arg(env.state().join("templates").join(t.as_str()).join("disk.img")).stdout(Stdio::null()));
            let (mut clone, mut wall) = (Vec::new(), Vec::new());
            let mut method = String::new();
            for _ in 0..runs {
                let (j, took) =
                    env.ok(Some(OWNER), &["install", &vm, &format!("template={t}"), "--no-start", "--json"], HASH.as_bytes());
                clone.push(j["clone_s"].as_f64().unwrap() * 1e3);
                wall.push(ms(took));
                method = j["clone_method"].as_str().unwrap_or("?").to_owned();
            }
            let volume_kib = std::os::unix::fs::MetadataExt::blocks(&fs::metadata(disk).unwrap()) / 2;
            out.push(CloneFig { mib, method, clone: stats(&clone), wall: stats(&wall), volume_kib });
            env.ok(Some(OWNER), &["cancel", &vm, "--json"], b"");
        }
    }
    out
}

/// An XFS made with reflink on a sparse image in the cache, mounted for
/// the run (the templates made on it stay in the image).
struct XfsMount(PathBuf);
impl XfsMount {
    fn mount() -> XfsMount {
        let img = cache().join("xfs.img");
        let at = cache().join("xfs");
        fs::create_dir_all(&at).unwrap();
        if !img.exists() {
            fs::File::create(&img).unwrap().set_len(16 << 30).unwrap();
            sh(Command::new("mkfs.xfs").args(["-q", "-m", "reflink=1"]).arg(&img));
        }
        sh(Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&at));
        XfsMount(at)
    }
}
impl Drop for XfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The real template: the tests' cached build if it matches this code,
/// else a build here (mmdebstrap), cached.
fn real_template(env: &Env) -> TemplateName {
    let name = TemplateName::parse("real").unwrap();
    let templates = env.state().join("templates");
    if template::load(&templates, &name).is_ok_and(|t| t.manifest.build_key == template::build_key()) {
        return name;
    }
    let _ = Command::new("chmod").arg("-R").arg("u+w").arg(templates.join("real")).stderr(Stdio::null()).status();
    let _ = fs::remove_dir_all(templates.join("real"));
    let tests_cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gi-fixtures/template-{}/tpl", template::build_key()));
    if tests_cache.join("manifest.json").exists() {
        eprintln!("bench: using the tests' cached template {}", tests_cache.display());
        fs::create_dir_all(&templates).unwrap();
        sh(Command::new("cp").args(["-a", "--sparse=always"]).arg(&tests_cache).arg(templates.join("real")));
        let mpath = templates.join("real/manifest.json");
        let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
        m["name"] = "real".into();
        let _ = Command::new("chmod").arg("u+w").arg(templates.join("real")).arg(&mpath).status();
        fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        return name;
    }
    eprintln!("bench: building the real template with mmdebstrap (~2 min)");
    env.ok(None, &["template", "build", "bench", "name=real", "--json"], b"");
    name
}

/// Waits for `marker` on the VM's console; request time `t0`.
fn wait_for(env: &Env, vm: &str, t0: Instant, marker: &str) -> Option<Duration> {
    let console = env.state().join("vms").join(vm).join("console.log");
    while t0.elapsed() < BOOT_BOUND {
        let text = fs::read(&console).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(marker) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Kills the VM's qemu at once and cancels what is left.
fn kill(env: &Env, vm: &str) {
    let pid = fs::read_to_string(env.state().join("vms").join(vm).join("qemu.pid")).unwrap_or_default();
    if let Ok(pid) = pid.trim().parse::<i32>() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = env.run(Some(OWNER), &["cancel", vm], b"");
}

/// Starts `args` (an install) and waits for `marker` on the console;
/// kills the guest at once after. Returns request → marker.
fn time_to(env: &Env, vm: &str, args: &[&str], marker: &str) -> Option<Duration> {
    let t0 = Instant::now();
    env.ok(Some(OWNER), args, HASH.as_bytes());
    let got = wait_for(env, vm, t0, marker);
    kill(env, vm);
    got
}

const LOGIN: &str = "gi-bench login:";

/// The old way, kept here only to compare: the clone is made by the
/// request (`--no-start`), then qemu is run with the recorded command line
/// but the template's kernel and initrd instead of the disk's boot code.
fn boot_direct(env: &Env, vm: &str, t: &TemplateName) -> Option<Duration> {
    let tpl = template::load(&env.state().join("templates"), t).unwrap();
    let t0 = Instant::now();
    env.ok(Some(OWNER), &["install", vm, &format!("template={t}"), "hostname=gi-bench", "--no-start", "--json"], HASH.as_bytes());
    let vm_dir = env.state().join("vms").join(vm);
    let cfg = fs::read_to_string(vm_dir.join("domain.cfg")).unwrap();
    let (program, mut args) = common::shared::qemu_by_hand(&cfg, &vm_dir);
    let k = args.iter().position(|a| a == "-boot").expect("a clone boots its disk (-boot c)");
    let direct = ["-kernel".to_owned(), tpl.kernel().display().to_string(), "-initrd".into(), tpl.initrd().display().to_string(), "-append".into(), template::CLONE_ARGS.into()];
    args.splice(k..k + 2, direct);
    sh(Command::new(&program).args(&args));
    let got = wait_for(env, vm, t0, LOGIN);
    kill(env, vm);
    got
}

/// Through the boot loader: request → login; then a clean `stop` and
/// `start` → login. Returns both.
fn boot_loader_and_start(env: &Env, vm: &str, t: &TemplateName) -> (Option<Duration>, Option<Duration>) {
    let t0 = Instant::now();
    env.ok(Some(OWNER), &["install", vm, &format!("template={t}"), "hostname=gi-bench", "--json"], HASH.as_bytes());
    let first = wait_for(env, vm, t0, LOGIN);
    let mut again = None;
    if first.is_some() {
        let (st, _) = env.ok(Some(OWNER), &["status", vm, "--json"], b"");
        if st["state"] == "installed" && env.run(Some(OWNER), &["stop", vm, "--force", "--json"], b"").0 == 0 {
            let t1 = Instant::now();
            if env.run(Some(OWNER), &["start", vm, "--json"], b"").0 == 0 {
                again = wait_for(env, vm, t1, LOGIN);
            }
        } else {
            eprintln!("bench: {vm} is {} after its login prompt; no start figure", st["state"]);
        }
    }
    kill(env, vm);
    (first, again)
}

struct Boots {
    direct: Vec<f64>,
    loader: Vec<f64>,
    start: Vec<f64>,
    installer: Option<Duration>,
}

fn bench_boots(env: &Env, rounds: usize, installer: bool) -> Boots {
    // The installer image, as the demo builds it.
    if installer && !env.state().join("images/bench").exists() {
        let cd = env.dir.join("cd");
        let _ = fs::remove_dir_all(&cd);
        sh(Command::new(repo().join("tests/support/iso/make-installer-tree")).arg(&cd));
        let iso = env.dir.join("installer.iso");
        sh(Command::new(repo().join("tests/support/iso/make-installer-iso")).arg(&cd).arg(&iso));
        let sum = sh(Command::new("sha256sum").arg(&iso));
        let sum = format!("sha256={}", sum.split_whitespace().next().unwrap());
        env.ok(None, &["image", "import", "bench", iso.to_str().unwrap(), &sum, "--json"], b"");
        fs::remove_dir_all(&cd).unwrap();
    }
    let t = real_template(env);
    let qcow = env.dir.join("boot-clone.qcow2");
    let raw = env.dir.join("boot-installer.img");
    sh(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&qcow).arg("4G"));
    fs::File::create(&raw).unwrap().set_len(4 << 30).unwrap();
    env.machine("bootclone", 20, &qcow, &["memory=1024", "vcpus=2"]);
    let secs = |d: Option<Duration>, v: &mut Vec<f64>| {
        if let Some(d) = d {
            v.push(d.as_secs_f64());
        }
    };
    let mut b = Boots { direct: Vec::new(), loader: Vec::new(), start: Vec::new(), installer: None };
    for round in 1..=rounds {
        eprintln!("bench: round {round}/{rounds}: a clone booted directly (the template's kernel) to its login prompt (TCG)");
        secs(boot_direct(env, "bootclone", &t), &mut b.direct);
        eprintln!("bench: round {round}/{rounds}: a clone through the boot loader, then stopped and started (TCG)");
        let (first, again) = boot_loader_and_start(env, "bootclone", &t);
        secs(first, &mut b.loader);
        secs(again, &mut b.start);
    }
    if installer {
        env.machine("bootinst", 21, &raw, &["memory=1024", "vcpus=2", "image=bench"]);
        eprintln!("bench: booting the installer to its mirror step (TCG)");
        b.installer = time_to(env, "bootinst", &["install", "bootinst", "image=bench", "--json"], "Checking the Debian archive mirror");
    }
    b
}

fn main() {
    let sizes: Vec<u64> = std::env::var("GI_BENCH_TEMPLATE_SIZES")
        .unwrap_or_else(|_| "1024,4096".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    assert!(!sizes.is_empty(), "GI_BENCH_TEMPLATE_SIZES names no size");
    let runs = env_num("GI_BENCH_RUNS", 11).max(3);
    let boot = env_num("GI_BENCH_BOOT", 1) != 0;
    let xfs = env_num("GI_BENCH_XFS", 1) != 0;
    let rounds = env_num("GI_BENCH_BOOT_ROUNDS", 2).max(1);
    let installer = env_num("GI_BENCH_INSTALLER", 1) != 0;
    let t_all = Instant::now();
    let load_before = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let env = Env::new("run");
    let mut clones = bench_clones(&env, &sizes, runs, true);
    if xfs {
        let _mnt = XfsMount::mount();
        let xenv = Env::new("xfs/run");
        // The same synthetic templates, on the XFS.
        for &mib in &sizes {
            let name = format!("syn{mib}");
            let (src, dst) = (env.state().join("templates").join(&name), xenv.state().join("templates").join(&name));
            if !dst.exists() {
                fs::create_dir_all(dst.parent().unwrap()).unwrap();
                sh(Command::new("cp").args(["-a", "--sparse=always"]).arg(&src).arg(&dst));
            }
        }
        clones.extend(bench_clones(&xenv, &sizes, runs, false));
    }
    let boots = boot.then(|| bench_boots(&env, rounds, installer));

    println!();
    println!("template bench: medians of {runs} runs; took {:.0} s; load before {}", t_all.elapsed().as_secs_f64(),
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    println!("clone + identity (install VM template=T --no-start, release binary; clone_s is the program's own figure):");
    for c in &clones {
        println!(
            "  {:>5} MiB template, {:<13} clone_s {}  [{:.3}x the {TARGET_CLONE_MS:.0} ms target]; whole process p50 {:.1} ms; volume now {:.1} MiB on disk",
            c.mib,
            c.method,
            c.clone,
            c.clone.p50 / TARGET_CLONE_MS,
            c.wall.p50,
            c.volume_kib as f64 / 1024.0
        );
    }
    for method in ["qcow2-overlay", "sparse-copy", "reflink"] {
        let f: Vec<&CloneFig> = clones.iter().filter(|c| c.method == method).collect();
        if let (Some(a), Some(b)) = (f.first(), f.last()) {
            if a.mib != b.mib {
                println!(
                    "  {method}: {} MiB / {} MiB template: clone_s ratio {:.2}x (1.00 = flat in template size)",
                    b.mib,
                    a.mib,
                    b.clone.p50 / a.clone.p50
                );
            }
        }
    }
    if let Some(b) = boots {
        let med = |v: &[f64]| (!v.is_empty()).then(|| stats(v).p50);
        let show = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", ");
        println!("request -> 'login:' with its own hostname, under TCG here (one guest at a time, 1024 MiB, 2 vCPUs; medians, runs in brackets):");
        let (d, l, st) = (med(&b.direct), med(&b.loader), med(&b.start));
        match d {
            Some(d) => println!("  direct kernel (template's, from the host; bench only) {d:>6.1} s  [{}]", show(&b.direct)),
            None => println!("  direct kernel: no login prompt within {BOOT_BOUND:?}"),
        }
        match l {
            Some(l) => println!("  through the boot loader (GRUB, clone's grub.cfg)     {l:>6.1} s  [{}]", show(&b.loader)),
            None => println!("  through the boot loader: no login prompt within {BOOT_BOUND:?}"),
        }
        match st {
            Some(s) => println!("  `start` of the stopped clone -> login               {s:>6.1} s  [{}]", show(&b.start)),
            None => println!("  `start` of the stopped clone: no login prompt within {BOOT_BOUND:?}"),
        }
        if let (Some(d), Some(l)) = (d, l) {
            println!("  boot loader / direct: {:.2}x (target <= 1.15x)", l / d);
        }
        if let (Some(d), Some(s)) = (d, st) {
            println!("  start / direct:       {:.2}x (target <= 1.15x)", s / d);
        }
        match b.installer {
            Some(i) => println!("  installer: request -> first contact with the mirror     {:>6.1} s (a lower bound: the base system is still to come)", i.as_secs_f64()),
            None if installer => println!("  installer: did not reach the mirror step within {BOOT_BOUND:?}"),
            None => {}
        }
        if let (Some(i), Some(l)) = (b.installer, l) {
            println!(
                "  ratio: the installer before its first download is already {:.1}x the clone's whole request -> login",
                i.as_secs_f64() / l
            );
            println!(
                "  against the issue's ~{:.0} min for a whole install on real hardware: {:.0}x (the clone here runs under TCG, the install on hardware)",
                REAL_HARDWARE_INSTALL_S / 60.0,
                REAL_HARDWARE_INSTALL_S / l
            );
        }
    }
}
