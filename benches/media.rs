//! Per-VM boot media: ours against the seed's method and the xorriso graft
//! (issue 6). Run it with
//!
//!     cargo bench --bench media
//!
//! It builds, once, synthetic installer images of ~600 MB (≥ 1,500 files)
//! and ~2.4 GB (real random bytes, with the real d-i kernel/initrd and
//! isolinux: `tests/support/iso/make-installer-tree --bulk-mb N`), masters
//! each into an installer ISO and imports it with the release binary
//! (`image import`). All of it is cached under `target/tmp/bench-media/`,
//! keyed by size, and re-imported when the current code cannot load the
//! cached image any more. Then, in one run, page cache warm, for each size:
//!
//! - seed:  `cp -a` of the image's tree, write `preseed.cfg` into the copy,
//!   `genisoimage` with the seed's flags over the copy (a copy, because
//!   genisoimage writes the boot info table into isolinux.bin);
//! - graft: `xorriso -as mkisofs ... -graft-points /=TREE
//!   /preseed.cfg=F /install.amd/preseed.img=G` over the pristine tree;
//! - ours:  `media::build` in-process; the whole `install VM --no-start`
//!   process (start to exit, as remctld runs it: REMOTE_USER of an owner,
//!   cleartext root password on stdin, a registered machine, the xl
//!   stand-in of tests/support/xl answering `xl domid`); `status VM`.
//!
//! It prints one line per figure (median, min, max), the ratios, peak
//! memory (each child's maxrss from wait4, getrusage(RUSAGE_CHILDREN), and
//! this process's VmHWM while building media in-process) and the disk used
//! per VM. It asserts nothing about time.
//!
//! Environment (all optional):
//!
//! - `GI_BENCH_SIZES`: MiB of bulk per image, comma-separated
//!   (default `600,2400`); the first is the reference size for the ratios.
//! - `GI_BENCH_RUNS`: runs of each of our figures (default 31).
//! - `GI_BENCH_BASELINE_RUNS`: runs of the seed's method and of the graft
//!   (default 5; fewer than 5 is raised to 5).
//! - `GI_BENCH_BASELINES`: `all` (default: every size), `first` (only the
//!   first size: saves ~2 minutes), or `none`.
//! - `GI_BENCH_DIR`: the cache directory (default
//!   `target/tmp/bench-media`).
//!
//! Cost: the first run builds and imports the images (~2 min for both,
//! ~8 GB of disk under the cache dir); then about 1.5 minutes per run,
//! almost all of it the two baselines on the 2.4 GB image. Our figures
//! are taken for all sizes in turn, run by run, after the baselines.

mod common;

use common::{bin, env_num, ms, repo, stats, Stats};
use guest_installer::config::Config;
use guest_installer::guest::Guest;
use guest_installer::image::{self, Image};
use guest_installer::media;
use guest_installer::preseed;
use guest_installer::secret::CryptHash;
use guest_installer::state::VmDir;
use guest_installer::types::{Boot, Hostname, ImageName, Network};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "bench";
const VM: &str = "bench1";
const OWNER: &str = "bob@EXAMPLE.ORG";
const ADMIN: &str = "alice/admin@EXAMPLE.ORG";
const PASSWORD: &str = "correct horse battery staple";
const BENCH_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";
const SEED_VOLID: &str = "SIPB-Xen_Custom_Install_CD";

/// What one child process cost.
struct Ran {
    took: Duration,
    code: i32,
    maxrss_kib: u64,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to its end, timed from just before spawn to its reaping, and
/// takes its own rusage with wait4 (maxrss of that child alone). Output
/// goes to anonymous files, so a chatty tool can never block on a pipe.
fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Ran {
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    cmd.stdout(Stdio::from(out.try_clone().unwrap())).stderr(Stdio::from(err.try_clone().unwrap()));
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let t0 = Instant::now();
    // Reaped below with wait4 (for its rusage), not with Child::wait.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if let Some(data) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(data).unwrap();
    }
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let took = t0.elapsed();
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    let read_all = |f: &mut File| {
        let mut s = String::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut s).ok();
        s
    };
    Ran { took, code, maxrss_kib: ru.ru_maxrss as u64, stdout: read_all(&mut out), stderr: read_all(&mut err) }
}

fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>) -> Ran {
    let desc = format!("{cmd:?}");
    let r = run(cmd, stdin);
    assert_eq!(r.code, 0, "{desc} exited {}:\n{}{}", r.code, r.stdout, r.stderr);
    r
}

fn rusage_children_maxrss_kib() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as u64
}

fn proc_status_kib(field: &str) -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0).
fn reset_hwm() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// Bytes allocated on disk (st_blocks) and apparent bytes under `p`.
fn disk_usage(p: &Path) -> (u64, u64) {
    let m = fs::symlink_metadata(p).unwrap();
    let mut alloc = m.blocks() * 512;
    let mut len = if m.is_file() { m.len() } else { 0 };
    if m.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            let (a, l) = disk_usage(&e.unwrap().path());
            alloc += a;
            len += l;
        }
    }
    (alloc, len)
}

/// Reads every file under `p` once, so the tree is in the page cache.
fn warm(p: &Path) -> u64 {
    let m = fs::symlink_metadata(p).unwrap();
    if m.is_dir() {
        fs::read_dir(p).unwrap().map(|e| warm(&e.unwrap().path())).sum()
    } else if m.is_file() {
        std::io::copy(&mut File::open(p).unwrap(), &mut std::io::sink()).unwrap()
    } else {
        0
    }
}

fn count_files(p: &Path) -> u64 {
    let m = fs::symlink_metadata(p).unwrap();
    if m.is_dir() {
        fs::read_dir(p).unwrap().map(|e| count_files(&e.unwrap().path())).sum()
    } else {
        u64::from(m.is_file())
    }
}

/// Removes a tree even where it is read-only (an imported image, a `cp -a`
/// copy of one).
fn remove_tree(p: &Path) {
    fn writable(p: &Path) {
        if let Ok(m) = fs::symlink_metadata(p) {
            if m.is_dir() {
                let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                for e in fs::read_dir(p).unwrap().flatten() {
                    writable(&e.path());
                }
            }
        }
    }
    if fs::symlink_metadata(p).is_err() {
        return;
    }
    writable(p);
    fs::remove_dir_all(p).unwrap_or_else(|e| panic!("removing {}: {e}", p.display()));
}

fn sync() {
    unsafe { libc::sync() };
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One synthetic image, built and imported once, and a state dir around it.
struct Bench {
    mib: u64,
    dir: PathBuf,
    state: PathBuf,
    config: PathBuf,
    xl: PathBuf,
    image: Image,
    cfg: Config,
    _syslog: UnixDatagram,
    _sockdir: tempfile::TempDir,
}

fn cache_root() -> PathBuf {
    std::env::var_os("GI_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-media"))
}

/// The source ISO for `mib` MiB of bulk: a tree from make-installer-tree
/// mastered with make-installer-iso; the tree is dropped afterwards.
fn source_iso(dir: &Path, mib: u64) -> PathBuf {
    let iso = dir.join("installer.iso");
    if iso.exists() {
        return iso;
    }
    let t0 = Instant::now();
    eprintln!("bench: building the {mib} MiB installer ISO (once; cached in {})", dir.display());
    let tree = dir.join(".tree-tmp");
    let tmp = dir.join(".installer.iso.tmp");
    remove_tree(&tree);
    let _ = fs::remove_file(&tmp);
    let files = (mib * 5 / 2).max(1500);
    run_ok(
        Command::new(repo().join("tests/support/iso/make-installer-tree"))
            .arg(&tree)
            .args(["--bulk-mb", &mib.to_string(), "--bulk-files", &files.to_string()]),
        None,
    );
    run_ok(Command::new(repo().join("tests/support/iso/make-installer-iso")).arg(&tree).arg(&tmp), None);
    remove_tree(&tree);
    fs::rename(&tmp, &iso).unwrap();
    eprintln!("bench:   built in {:.1} s", t0.elapsed().as_secs_f64());
    iso
}

fn write_config(path: &Path, state: &Path, xl: &Path, console: &Path, sock: &Path) {
    let config = common::shared::xl_config(&common::shared::XlConfig {
        state,
        preseed: &repo().join("etc/preseed.cfg"),
        admin: ADMIN,
        mirror: ("mirror.example.org", "/debian"),
        xl,
        console,
        sock,
        tool_s: 600,
        hypervisor_s: 30,
        extra: "",
        sections: "",
    });
    fs::write(path, config).unwrap();
    // The program trusts a config only root can change.
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

impl Bench {
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("GUEST_INSTALLER_CONFIG", &self.config);
        c
    }

    fn prepare(mib: u64) -> Bench {
        let dir = cache_root().join(format!("bulk-{mib}mib"));
        fs::create_dir_all(&dir).unwrap();
        let iso = source_iso(&dir, mib);
        let state = dir.join("state");
        fs::create_dir_all(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
        // What earlier runs left: only the imported image is kept.
        for sub in ["vms", "machines", "locks"] {
            remove_tree(&state.join(sub));
        }
        let console = dir.join("console");
        fs::create_dir_all(&console).unwrap();
        let xl_dir = dir.join("xl");
        remove_tree(&xl_dir);
        let xl = PathBuf::from(
            run_ok(
                Command::new(repo().join("tests/support/xl/install-standin"))
                    .arg(&xl_dir)
                    .env("XL_SUPPORT_BUILD_DIR", PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xl-support")),
                None,
            )
            .stdout
            .trim(),
        );
        let sockdir = tempfile::Builder::new().prefix("gi-bench-").tempdir().unwrap();
        let sock = sockdir.path().join("syslog.sock");
        let syslog = UnixDatagram::bind(&sock).unwrap();
        {
            // Drain the audit records so the socket never fills.
            let s = syslog.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while s.recv(&mut buf).is_ok() {}
            });
        }
        let config = dir.join("config.toml");
        write_config(&config, &state, &xl, &console, &sock);
        let cfg = Config::parse(&fs::read_to_string(&config).unwrap()).unwrap();

        let name = ImageName::parse(IMAGE).unwrap();
        let images = state.join("images");
        let image = match image::load(&images, &name) {
            Ok(i) if i.base_iso().exists() => i,
            _ => {
                remove_tree(&images.join(IMAGE));
                let t0 = Instant::now();
                eprintln!("bench: importing the {mib} MiB ISO with {} (once)", bin().display());
                let sum = image::sha256_file(&iso).unwrap().0;
                let mut b = Bench::cmd_for(&config);
                run_ok(b.args(["image", "import", IMAGE]).arg(&iso).arg(format!("sha256={sum}")), None);
                eprintln!("bench:   imported in {:.1} s", t0.elapsed().as_secs_f64());
                image::load(&images, &name).unwrap()
            }
        };
        let b = Bench { mib, dir, state, config, xl, image, cfg, _syslog: syslog, _sockdir: sockdir };
        // A registered machine with a volume, as admins set them up.
        let disk = b.dir.join("bench1.img");
        File::create(&disk).unwrap().set_len(64 << 20).unwrap();
        // disk= names a host path: root on the host imports it.
        run_ok(
            b.cmd().args([
                "machine",
                "add",
                VM,
                &format!("owner={OWNER}"),
                "ip=192.0.2.10",
                "netmask=255.255.255.0",
                "gateway=192.0.2.1",
                "nameserver=192.0.2.53",
                "mac=00:16:3e:00:00:01",
                &format!("disk={}", disk.display()),
                &format!("image={IMAGE}"),
            ]),
            None,
        );
        b
    }

    fn cmd_for(config: &Path) -> Command {
        let mut c = Command::new(bin());
        c.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("GUEST_INSTALLER_CONFIG", config);
        c
    }

    fn tree(&self) -> PathBuf {
        self.image.tree()
    }

    /// The preseed `install` would write for the bench machine.
    fn preseed(&self, host: &str) -> String {
        let preseed_template = fs::read_to_string(repo().join("etc/preseed.cfg")).unwrap();
        preseed::render(
            &preseed_template,
            &preseed::Values {
                guest: &Guest {
                    hostname: &Hostname::parse(host).unwrap(),
                    domain: &self.cfg.domain,
                    network: &Network::new("192.0.2.10", "255.255.255.0", "192.0.2.1", &["192.0.2.53"]).unwrap(),
                    root: &guest_installer::rootlogin::RootLogin::console_only(CryptHash::parse_hash(BENCH_HASH).unwrap()),
                },
                mirror: &self.cfg.mirror,
            },
        )
    }
}

#[derive(Default)]
struct Figures {
    seed: Option<(Stats, Stats, Stats)>, // total, cp -a, genisoimage
    graft: Option<Stats>,
    ours: Option<Stats>,
    install: Option<Stats>,
    status: Option<Stats>,
    xl_domid: Option<Stats>,
    rss_cp: u64,
    rss_geniso: u64,
    rss_xorriso: u64,
    rss_install: u64,
    rss_status: u64,
    hwm_build_kib: u64,
    rss_before_build_kib: u64,
    seed_disk: u64,
    graft_disk: u64,
    vm_disk: (u64, u64),
    media_disk: (u64, u64),
    tree_disk: (u64, u64),
    base_disk: (u64, u64),
    files: u64,
}

/// The seed's way: copy the tree, drop the preseed into the copy, master
/// the copy with genisoimage and the seed's flags.
fn bench_seed(b: &Bench, runs: usize, f: &mut Figures) {
    let work = b.dir.join("seed-work");
    remove_tree(&work);
    fs::create_dir_all(&work).unwrap();
    let copy = work.join("cdrom");
    let out = work.join("seed.iso");
    let text = b.preseed("bench1");
    let (mut tot, mut cp, mut gen) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        remove_tree(&copy);
        let _ = fs::remove_file(&out);
        sync();
        let t0 = Instant::now();
        let c = run_ok(Command::new("cp").arg("-a").arg(b.tree()).arg(&copy), None);
        fs::write(copy.join("preseed.cfg"), &text).unwrap();
        let g = run_ok(
            Command::new("genisoimage")
                .args(["-quiet", "-r", "-V", SEED_VOLID, "-cache-inodes", "-J", "-l"])
                .args(["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat"])
                .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
                .arg("-o")
                .arg(&out)
                .arg(&copy),
            None,
        );
        tot.push(ms(t0.elapsed()));
        cp.push(ms(c.took));
        gen.push(ms(g.took));
        f.rss_cp = f.rss_cp.max(c.maxrss_kib);
        f.rss_geniso = f.rss_geniso.max(g.maxrss_kib);
        if i == 0 {
            f.seed_disk = disk_usage(&copy).0 + disk_usage(&out).0;
        }
    }
    remove_tree(&work);
    sync();
    f.seed = Some((stats(&tot), stats(&cp), stats(&gen)));
}

/// The xorriso graft: the pristine tree, with the two per-VM files grafted
/// over it.
fn bench_graft(b: &Bench, runs: usize, f: &mut Figures) {
    let work = b.dir.join("graft-work");
    remove_tree(&work);
    fs::create_dir_all(&work).unwrap();
    let out = work.join("graft.iso");
    let cfg = work.join("preseed.cfg");
    let img = work.join("preseed.img");
    let text = b.preseed("bench1");
    let mut v = Vec::new();
    for i in 0..runs {
        let _ = fs::remove_file(&out);
        sync();
        let t0 = Instant::now();
        fs::write(&cfg, &text).unwrap();
        fs::write(&img, media::initrd::write_preseed_cpio(text.as_bytes(), Vec::new()).unwrap()).unwrap();
        let g = |dest: &str, src: &Path| format!("{dest}={}", src.display());
        let x = run_ok(
            Command::new("xorriso")
                .args(["-no_rc", "-as", "mkisofs", "-quiet", "-r", "-J", "-l", "-V", "guest-installer"])
                .args(["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat"])
                .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
                .arg("-o")
                .arg(&out)
                .arg("-graft-points")
                .arg(g("/", &b.tree()))
                .arg(g("/preseed.cfg", &cfg))
                .arg(g("/install.amd/preseed.img", &img)),
            None,
        );
        v.push(ms(t0.elapsed()));
        f.rss_xorriso = f.rss_xorriso.max(x.maxrss_kib);
        if i == 0 {
            f.graft_disk = disk_usage(&out).0;
        }
    }
    remove_tree(&work);
    sync();
    f.graft = Some(stats(&v));
}

/// Ours: media::build in-process, then the whole install and status
/// processes. Every figure is taken for all sizes in turn, run by run, so
/// whatever else the machine does weighs on each size alike and the
/// scaling ratio stays honest.
fn bench_ours(benches: &[Bench], runs: usize, figs: &mut [Figures]) {
    // ext4 (data=ordered) makes an fsync wait for other files' dirty data
    // in the same journal commit: start with none (an import or a
    // baseline just wrote gigabytes).
    sync();
    let k = benches.len();

    // In-process, into a VM directory of its own.
    let vmdirs: Vec<VmDir> = benches.iter().map(|b| VmDir { dir: b.state.join("vms").join("bench-lib") }).collect();
    let texts: Vec<[String; 2]> = benches.iter().map(|b| [b.preseed("bench1"), b.preseed("bench2")]).collect();
    for j in 0..k {
        fs::create_dir_all(&vmdirs[j].dir).unwrap();
        fs::set_permissions(&vmdirs[j].dir, fs::Permissions::from_mode(0o700)).unwrap();
        for t in &texts[j] {
            media::build(Boot::HvmIso, &benches[j].image, t, &vmdirs[j]).unwrap(); // warm-up
        }
    }
    let rss_before = proc_status_kib("VmRSS");
    reset_hwm();
    let mut v = vec![Vec::new(); k];
    for i in 0..runs {
        for j in 0..k {
            let t0 = Instant::now();
            let m = media::build(Boot::HvmIso, &benches[j].image, &texts[j][i % 2], &vmdirs[j]).unwrap();
            v[j].push(ms(t0.elapsed()));
            assert!(m.path().is_some_and(|p| p.exists()));
        }
    }
    let hwm = proc_status_kib("VmHWM");
    for j in 0..k {
        figs[j].ours = Some(stats(&v[j]));
        figs[j].media_disk = disk_usage(&vmdirs[j].cdrom());
        figs[j].rss_before_build_kib = rss_before;
        figs[j].hwm_build_kib = hwm;
    }

    // The whole request, as remctld runs it.
    let stdin = format!("{PASSWORD}\n");
    let install = |b: &Bench, host: &str| {
        let r = run(
            b.cmd().env("REMOTE_USER", OWNER).args(["install", VM, &format!("hostname={host}"), "--no-start"]),
            Some(stdin.as_bytes()),
        );
        assert_eq!(r.code, 0, "install exited {}: {}{}", r.code, r.stdout, r.stderr);
        r
    };
    for b in benches {
        for h in ["bench1", "bench2"] {
            install(b, h);
        }
    }
    let mut v = vec![Vec::new(); k];
    for i in 0..runs {
        for j in 0..k {
            let r = install(&benches[j], if i % 2 == 0 { "bench1" } else { "bench2" });
            v[j].push(ms(r.took));
            figs[j].rss_install = figs[j].rss_install.max(r.maxrss_kib);
        }
    }
    for j in 0..k {
        figs[j].install = Some(stats(&v[j]));
        figs[j].vm_disk = disk_usage(&benches[j].state.join("vms").join(VM));
    }

    let mut v = vec![Vec::new(); k];
    for i in 0..runs + 2 {
        for j in 0..k {
            let r = run_ok(benches[j].cmd().env("REMOTE_USER", OWNER).args(["status", VM, "--json"]), None);
            assert!(r.stdout.contains("\"prepared\""), "{}", r.stdout);
            if i >= 2 {
                v[j].push(ms(r.took));
                figs[j].rss_status = figs[j].rss_status.max(r.maxrss_kib);
            }
        }
    }
    for j in 0..k {
        figs[j].status = Some(stats(&v[j]));
    }

    // What the stand-in `xl domid` (run once by each install) costs alone.
    let mut v = vec![Vec::new(); k];
    for _ in 0..runs {
        for j in 0..k {
            v[j].push(ms(run(Command::new(&benches[j].xl).args(["domid", VM]), None).took));
        }
    }
    for j in 0..k {
        figs[j].xl_domid = Some(stats(&v[j]));
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "n/a".into(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let sizes: Vec<u64> = std::env::var("GI_BENCH_SIZES")
        .unwrap_or_else(|_| "600,2400".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    assert!(!sizes.is_empty(), "GI_BENCH_SIZES names no size");
    let runs = env_num("GI_BENCH_RUNS", 31).max(5);
    let base_runs = env_num("GI_BENCH_BASELINE_RUNS", 5).max(5);
    let baselines = std::env::var("GI_BENCH_BASELINES").unwrap_or_else(|_| "all".into());
    for tool in ["cp", "genisoimage", "xorriso"] {
        if Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            panic!("{tool} is missing (apt-get install -y coreutils genisoimage xorriso)");
        }
    }
    let t_all = Instant::now();
    let load_before = fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let benches: Vec<Bench> = sizes.iter().map(|&m| Bench::prepare(m)).collect();
    let mut figs: Vec<Figures> = Vec::new();
    for (i, b) in benches.iter().enumerate() {
        let mut f = Figures {
            tree_disk: disk_usage(&b.tree()),
            base_disk: disk_usage(&b.image.base_iso()),
            files: count_files(&b.tree()),
            ..Figures::default()
        };
        let with_baselines = match baselines.as_str() {
            "none" => false,
            "first" => i == 0,
            _ => true,
        };
        eprintln!(
            "bench: {} MiB image: warming the page cache{}",
            b.mib,
            if with_baselines { ", then the baselines (slow)" } else { "" }
        );
        warm(&b.tree());
        warm(&b.image.base_iso());
        if with_baselines {
            bench_graft(b, base_runs, &mut f);
            bench_seed(b, base_runs, &mut f);
        }
        figs.push(f);
    }
    eprintln!("bench: ours, all sizes in turn");
    bench_ours(&benches, runs, &mut figs);

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!();
    println!(
        "media bench: {cores} cores, page cache warm; medians of {runs} runs (ours) and {base_runs} runs (seed, graft); took {:.0} s",
        t_all.elapsed().as_secs_f64()
    );
    println!(
        "load average before: {}; after: {} (other work on this machine inflates every figure)",
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    for (b, f) in benches.iter().zip(&figs) {
        let tag = format!("[{:>4} MiB]", b.mib);
        println!(
            "{tag} image: {} files, tree {:.1} MB, base.iso {:.1} MB ({})",
            f.files,
            mb(f.tree_disk.1),
            mb(f.base_disk.1),
            b.dir.display()
        );
        if let Some((t, c, g)) = f.seed {
            println!("{tag} seed  cp -a + genisoimage      {t}");
            println!("{tag}         of which cp -a           {c}");
            println!("{tag}         of which genisoimage     {g}");
        }
        if let Some(g) = f.graft {
            println!("{tag} graft xorriso -graft-points     {g}");
        }
        println!("{tag} ours  media::build (in-process)  {}", f.ours.unwrap());
        println!("{tag} ours  install --no-start (proc)  {}", f.install.unwrap());
        println!("{tag}         of which xl domid (stand-in) {}", f.xl_domid.unwrap());
        println!("{tag} ours  status (process)           {}", f.status.unwrap());
        let ours = f.ours.map(|s| s.p50);
        let inst = f.install.map(|s| s.p50);
        println!(
            "{tag} ratios: seed/ours {}  graft/ours {}  (vs whole install process: seed/install {}  graft/install {})",
            ratio(f.seed.map(|s| s.0.p50), ours),
            ratio(f.graft.map(|s| s.p50), ours),
            ratio(f.seed.map(|s| s.0.p50), inst),
            ratio(f.graft.map(|s| s.p50), inst),
        );
        let kib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
        println!(
            "{tag} peak memory (maxrss, wait4 per child): cp -a {}, genisoimage {}, xorriso {}, install {}, status {}; bench VmHWM during media::build {} (RSS before {})",
            if f.seed.is_some() { kib(f.rss_cp) } else { "-".into() },
            if f.seed.is_some() { kib(f.rss_geniso) } else { "-".into() },
            if f.graft.is_some() { kib(f.rss_xorriso) } else { "-".into() },
            kib(f.rss_install),
            kib(f.rss_status),
            kib(f.hwm_build_kib),
            kib(f.rss_before_build_kib),
        );
        let image_bytes = f.base_disk.0 + f.tree_disk.0;
        println!(
            "{tag} disk per VM: ours install.qcow2 {:.2} MB allocated ({:.2} MB apparent), whole vms/{VM}/ {:.2} MB allocated = {:.3}% of base.iso ({:.1} MB allocated; image with tree {:.1} MB){}{}",
            mb(f.media_disk.0),
            mb(f.media_disk.1),
            mb(f.vm_disk.0),
            100.0 * f.vm_disk.0 as f64 / f.base_disk.0 as f64,
            mb(f.base_disk.0),
            mb(image_bytes),
            if f.seed.is_some() { format!("; seed {:.1} MB (copy + ISO)", mb(f.seed_disk)) } else { String::new() },
            if f.graft.is_some() { format!("; graft {:.1} MB (ISO)", mb(f.graft_disk)) } else { String::new() },
        );
    }
    if figs.len() >= 2 {
        let (a, z) = (&figs[0], &figs[figs.len() - 1]);
        let (ma, mz) = (benches[0].mib, benches[benches.len() - 1].mib);
        println!(
            "[scaling] {mz} MiB / {ma} MiB: ours media::build {}  install {}  status {}  (graft {}  seed {})",
            ratio(z.ours.map(|s| s.p50), a.ours.map(|s| s.p50)),
            ratio(z.install.map(|s| s.p50), a.install.map(|s| s.p50)),
            ratio(z.status.map(|s| s.p50), a.status.map(|s| s.p50)),
            ratio(z.graft.map(|s| s.p50), a.graft.map(|s| s.p50)),
            ratio(z.seed.map(|s| s.0.p50), a.seed.map(|s| s.0.p50)),
        );
    }
    println!(
        "[all] getrusage(RUSAGE_CHILDREN) maxrss, largest child of this run: {:.1} MiB; bench VmRSS at the end {:.1} MiB",
        rusage_children_maxrss_kib() as f64 / 1024.0,
        proc_status_kib("VmRSS") as f64 / 1024.0
    );
}
