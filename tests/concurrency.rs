//! Many requests at once (issue 6): parallel installs of distinct machines
//! all succeed with media of their own; parallel installs of one machine
//! let exactly one through and answer `busy` (exit 5) to the others; and a
//! reader never sees a torn per-VM medium while it is being replaced.
//! Timings are printed, never asserted.

mod common;

use common::*;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Distinct machines installed at once.
const DISTINCT: usize = 20;
/// Requests for one machine at once.
const SAME: usize = 10;
/// Re-installs of one machine while readers read its media.
const REINSTALLS: usize = 30;

const PW_HASH: &str = "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

/// Runs `f(i)` for i in 0..n on n threads released together by a barrier;
/// returns the results in order and the wall time from the release.
fn all_at_once<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> (Vec<T>, Duration) {
    let go = Barrier::new(n + 1);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (go, f) = (&go, &f);
                s.spawn(move || {
                    go.wait();
                    f(i)
                })
            })
            .collect();
        go.wait();
        let t0 = Instant::now();
        let out = hs.into_iter().map(|h| h.join().unwrap()).collect();
        (out, t0.elapsed())
    })
}

/// Runs `body` while a thread drains the test's syslog socket. Nobody
/// else reads it, and once its queue is full (net.unix.max_dgram_qlen,
/// 10 by default) every request waits out the audit send timeout (0.5 s):
/// the timings would measure that. Returns the audit records too.
fn draining<T>(env: &Env, body: impl FnOnce() -> T) -> (T, Vec<String>) {
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let drain = s.spawn(|| {
            let mut records = Vec::new();
            loop {
                let last = stop.load(Ordering::Relaxed);
                records.extend(env.audit());
                if last {
                    return records;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let out = {
            let _stop = Stop(&stop);
            body()
        };
        (out, drain.join().unwrap())
    })
}

/// Audit records of `action` on `vm` with `outcome`.
fn audited(records: &[String], action: &str, vm: &str, outcome: &str) -> usize {
    let want = format!(" action={action} vm={vm} outcome={outcome}");
    records.iter().filter(|r| r.contains(&want)).count()
}

/// The value of the first `d-i QUESTION TYPE VALUE` line for `question`.
fn answer<'a>(preseed: &'a str, question: &str) -> Option<&'a str> {
    preseed.lines().find_map(|l| {
        let mut w = l.splitn(4, ' ');
        (w.next() == Some("d-i") && w.next() == Some(question)).then(|| w.nth(1).unwrap_or("").trim_end())
    })
}

/// Where the image's reserved per-VM files lie in its base ISO.
fn reserved_extents(env: &Env, image: &str) -> [(u64, u64); 2] {
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(env.state.join("images").join(image).join("manifest.json")).unwrap()).unwrap();
    let e = |k: &str| (m["base_iso"][k]["offset"].as_u64().unwrap(), m["base_iso"][k]["len"].as_u64().unwrap());
    [e("preseed_cfg"), e("preseed_img")]
}

/// `qemu-img check` of a qcow2 file.
fn qemu_img_check(qcow2: &Path) -> Result<(), String> {
    let o = Command::new("qemu-img").args(["check", "-f", "qcow2"]).arg(qcow2).output().unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    }
}

/// Bytes [offset, offset+len) of the disk a qcow2 file reads as, read by
/// qemu itself (qemu-img's raw driver with an offset over the qcow2).
fn qemu_read(qcow2: &Path, offset: u64, len: u64, out: &Path) -> Result<Vec<u8>, String> {
    let spec = serde_json::json!({
        "driver": "raw", "offset": offset, "size": len,
        "file": {"driver": "qcow2", "file": {"driver": "file", "filename": qcow2}},
    });
    let _ = fs::remove_file(out);
    let o = Command::new("qemu-img").args(["convert", "-O", "raw"]).arg(format!("json:{spec}")).arg(out).output().unwrap();
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    fs::read(out).map_err(|e| e.to_string())
}

/// The preseed in the reserved `/preseed.cfg` (padded with newlines).
fn unpad_cfg(raw: &[u8]) -> Result<String, String> {
    let end = raw.iter().rposition(|&b| b != b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8(raw[..end.min(raw.len())].to_vec()).map_err(|_| "preseed.cfg is not UTF-8".to_owned())?;
    if text.contains('\0') {
        return Err("preseed.cfg holds NUL bytes".into());
    }
    Ok(format!("{text}\n"))
}

/// The preseed in the reserved `/install.amd/preseed.img`: a gzip'd newc
/// cpio holding `preseed.cfg`, then zeros.
fn preseed_from_initrd(raw: &[u8]) -> Result<String, String> {
    let mut gz = flate2::read::GzDecoder::new(raw);
    let mut cpio_bytes = Vec::new();
    gz.read_to_end(&mut cpio_bytes).map_err(|e| format!("preseed.img: gzip: {e}"))?;
    let mut r = cpio::NewcReader::new(&cpio_bytes[..]).map_err(|e| format!("preseed.img: cpio: {e}"))?;
    if r.entry().name() != "preseed.cfg" {
        return Err(format!("preseed.img holds {:?}", r.entry().name()));
    }
    let mut body = String::new();
    r.read_to_string(&mut body).map_err(|e| format!("preseed.img: {e}"))?;
    Ok(body)
}

#[test]
fn twenty_parallel_installs_of_distinct_machines_all_succeed_with_their_own_media() {
    let env = Env::new();
    let ((), audit) = draining(&env, || twenty_parallel(&env));
    for i in 1..=DISTINCT {
        // Two installs each: --no-start, then started.
        assert_eq!(audited(&audit, "install", &format!("vm{i}"), "ok"), 2, "{audit:#?}");
    }
}

fn twenty_parallel(env: &Env) {
    const N: usize = DISTINCT;
    env.import("bookworm", false);
    let vm = |i: usize| format!("vm{}", i + 1);
    for i in 0..N {
        env.machine(&vm(i), (i + 1) as u8, Some("bookworm"));
    }

    // First without starting guests: what guest-installer itself sustains
    // (media, domain config, state; `xl domid` only).
    let (outs, took) = all_at_once(N, |i| {
        env.run(As::Remote(OWNER), &["install", &vm(i), "hostname=first", "--no-start", "--json"], PW_HASH.as_bytes())
    });
    for o in &outs {
        assert_eq!(o.ok().json()["state"], "prepared");
    }
    println!(
        "concurrency: {N} parallel installs --no-start in {:.2} s = {:.1} installs/s",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );

    // Then for real: each request also runs `xl create`, and the stand-in
    // checks every config with Xen's own parser (~0.1 s of CPU each).
    let (outs, took) = all_at_once(N, |i| {
        let t0 = Instant::now();
        let host = format!("host{}", i + 1);
        let o = env.run(As::Remote(OWNER), &["install", &vm(i), &format!("hostname={host}"), "--json"], PW_HASH.as_bytes());
        (o, t0.elapsed())
    });
    let mut lat: Vec<f64> = outs.iter().map(|(_, d)| d.as_secs_f64() * 1e3).collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "concurrency: {N} parallel installs (xl stand-in, xl create checked by Xen's parser) in {:.2} s = {:.1} installs/s; per request p50 {:.0} ms, max {:.0} ms",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64(),
        lat[N / 2],
        lat[N - 1]
    );

    for (i, (o, _)) in outs.iter().enumerate() {
        let j = o.ok().json();
        assert_eq!(j["state"], "installing", "{}: {j}", vm(i));
        assert!(env.vm_file(&vm(i), "install.qcow2").exists());
        assert!(env.xl_running(&vm(i)), "{} is not running", vm(i));
    }

    // The stand-in saw exactly one create per machine, each with a config
    // its checker (Xen's own parser) accepted, pointing at that VM's media.
    let xl_dir = env.xl.parent().unwrap();
    let calls = fs::read_to_string(xl_dir.join("calls.log")).unwrap();
    let creates: Vec<&str> = calls.lines().filter(|l| l.starts_with("create ")).collect();
    assert_eq!(creates.len(), N, "{calls}");
    for i in 0..N {
        let cfg_path = env.vm_file(&vm(i), "domain.cfg");
        assert_eq!(creates.iter().filter(|l| **l == format!("create {}", cfg_path.display())).count(), 1, "{calls}");
        let accepted = fs::read_to_string(xl_dir.join("configs").join(format!("{}.cfg", vm(i)))).unwrap();
        assert_eq!(accepted, fs::read_to_string(&cfg_path).unwrap());
        assert!(accepted.contains(&format!("name = \"{}\"", vm(i))), "{accepted}");
        assert!(accepted.contains(&format!("target={}", env.vm_file(&vm(i), "install.qcow2").display())), "{accepted}");
    }

    // Each medium holds its own machine's values, read back through qemu
    // and xorriso (several at a time).
    let (checks, _) = all_at_once(N, |i| {
        let media = env.vm_file(&vm(i), "install.qcow2");
        qemu_img_check(&media).unwrap_or_else(|e| panic!("{}: {e}", vm(i)));
        let preseed = String::from_utf8(iso_file(&media, "/preseed.cfg")).unwrap();
        let from_initrd = preseed_from_initrd(&iso_file(&media, "/install.amd/preseed.img")).unwrap();
        (preseed, from_initrd)
    });
    for (i, (preseed, from_initrd)) in checks.iter().enumerate() {
        let host = format!("host{}", i + 1);
        let ip = format!("192.0.2.{}", 10 + i + 1);
        assert_eq!(answer(preseed, "netcfg/get_hostname"), Some(host.as_str()), "{}", vm(i));
        assert_eq!(answer(preseed, "netcfg/get_ipaddress"), Some(ip.as_str()), "{}", vm(i));
        assert_eq!(answer(preseed, "passwd/root-password-crypted"), Some(PW_HASH));
        assert_eq!(&unpad_cfg(preseed.as_bytes()).unwrap(), from_initrd, "{}: the two copies differ", vm(i));
    }
}

#[test]
fn parallel_installs_of_one_machine_let_exactly_one_through() {
    let env = Env::new();
    let ((), audit) = draining(&env, || one_machine(&env));
    assert_eq!(audited(&audit, "install", "web1", "ok"), 1, "{audit:#?}");
    // The N-1 losers and the late arrival.
    assert_eq!(audited(&audit, "install", "web1", "busy"), SAME, "{audit:#?}");
}

fn one_machine(env: &Env) {
    const N: usize = SAME;
    env.import("bookworm", false);
    env.machine("web1", 1, Some("bookworm"));

    let (outs, took) = all_at_once(N, |i| {
        let t0 = Instant::now();
        let o = env.run(As::Remote(OWNER), &["install", "web1", &format!("hostname=try{i}"), "--json"], PW_HASH.as_bytes());
        (o, t0.elapsed())
    });
    let winners: Vec<usize> = (0..N).filter(|&i| outs[i].0.code == 0).collect();
    assert_eq!(winners.len(), 1, "exactly one request must proceed: {outs:#?}");
    let winner = winners[0];
    let mut busy_ms = Vec::new();
    for (i, (o, d)) in outs.iter().enumerate() {
        if i == winner {
            continue;
        }
        assert_eq!(o.code, 5, "request {i}: {o:?}");
        assert_eq!(o.json()["error"]["kind"], "busy", "{o:?}");
        busy_ms.push(d.as_secs_f64() * 1e3);
    }
    busy_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "concurrency: {N} parallel installs of one machine in {:.2} s; winner {:.0} ms, the {} busy answers took {:.0}..{:.0} ms",
        took.as_secs_f64(),
        outs[winner].1.as_secs_f64() * 1e3,
        busy_ms.len(),
        busy_ms[0],
        busy_ms[busy_ms.len() - 1]
    );

    // One guest, started once.
    assert!(env.xl_running("web1"));
    let calls = fs::read_to_string(env.xl.parent().unwrap().join("calls.log")).unwrap();
    assert_eq!(calls.lines().filter(|l| l.starts_with("create ")).count(), 1, "{calls}");
    // A late arrival is busy too: the guest runs.
    let late = env.run(As::Remote(OWNER), &["install", "web1", "hostname=late", "--json"], PW_HASH.as_bytes());
    assert_eq!(late.code, 5, "{late:?}");
    assert_eq!(late.json()["error"]["kind"], "busy");

    // The media is whole and is the winner's.
    let media = env.vm_file("web1", "install.qcow2");
    qemu_img_check(&media).unwrap();
    let preseed = String::from_utf8(iso_file(&media, "/preseed.cfg")).unwrap();
    let want = format!("try{winner}");
    assert_eq!(answer(&preseed, "netcfg/get_hostname"), Some(want.as_str()));
    let from_initrd = preseed_from_initrd(&iso_file(&media, "/install.amd/preseed.img")).unwrap();
    assert_eq!(unpad_cfg(preseed.as_bytes()).unwrap(), from_initrd);
    let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "installing");
    // No temporaries left behind by the losers.
    let names: Vec<String> =
        fs::read_dir(env.state.join("vms/web1")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

/// Checks one snapshot of install.qcow2 (its bytes as one open file
/// descriptor saw them): qemu-img accepts it, and both reserved files, read
/// through qemu, hold the same whole preseed. Returns its hostname.
fn check_snapshot(bytes: &[u8], work: &Path, extents: &[(u64, u64); 2]) -> Result<String, String> {
    let copy = work.join("seen.qcow2");
    fs::write(&copy, bytes).unwrap();
    qemu_img_check(&copy).map_err(|e| format!("qemu-img check: {e}"))?;
    let cfg = qemu_read(&copy, extents[0].0, extents[0].1, &work.join("cfg.raw"))?;
    let img = qemu_read(&copy, extents[1].0, extents[1].1, &work.join("img.raw"))?;
    let preseed = unpad_cfg(&cfg)?;
    let from_initrd = preseed_from_initrd(&img)?;
    if preseed != from_initrd {
        return Err("preseed.cfg and preseed.img hold different preseeds".into());
    }
    answer(&preseed, "netcfg/get_hostname").map(str::to_owned).ok_or_else(|| "no hostname in the preseed".into())
}

#[test]
fn media_is_replaced_atomically_while_being_read() {
    let env = Env::new();
    let ((), audit) = draining(&env, || replaced_while_read(&env));
    assert_eq!(audited(&audit, "install", "web1", "ok"), REINSTALLS + 1, "{audit:#?}");
}

fn replaced_while_read(env: &Env) {
    const READERS: usize = 2;
    env.import("bookworm", false);
    env.machine("web1", 1, Some("bookworm"));
    let extents = reserved_extents(env, "bookworm");
    let media = env.vm_file("web1", "install.qcow2");
    let install = |host: &str| {
        env.run(As::Remote(OWNER), &["install", "web1", &format!("hostname={host}"), "--no-start"], PW_HASH.as_bytes()).ok();
    };
    install("alpha");

    // Readers read the whole file over and over while the writer replaces
    // it; every distinct snapshot is kept. The media of one hostname is the
    // same bytes each time (a crypt hash on stdin, no random salt), so a
    // whole-file world has two distinct snapshots and a torn one more.
    let done = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    let t0 = Instant::now();
    let snapshots: Vec<Vec<u8>> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (media, done, reads) = (&media, &done, &reads);
                s.spawn(move || {
                    let mut seen: Vec<Vec<u8>> = Vec::new();
                    let mut errors = Vec::new();
                    while !done.load(Ordering::Relaxed) {
                        let mut bytes = Vec::new();
                        if let Err(e) = fs::File::open(media).and_then(|mut f| f.read_to_end(&mut bytes)) {
                            errors.push(format!("open/read: {e}"));
                            continue;
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                        if !seen.contains(&bytes) {
                            seen.push(bytes);
                        }
                        // Leave the writer a core.
                        std::thread::sleep(Duration::from_millis(1));
                        if seen.len() > 50 {
                            errors.push("more than 50 distinct snapshots: media is not reproducible or torn".into());
                            break;
                        }
                    }
                    (seen, errors)
                })
            })
            .collect();
        for i in 0..REINSTALLS {
            install(if i % 2 == 0 { "beta" } else { "alpha" });
        }
        done.store(true, Ordering::Relaxed);
        let mut all: Vec<Vec<u8>> = Vec::new();
        let mut errors = Vec::new();
        for r in readers {
            let (seen, errs) = r.join().unwrap();
            for snap in seen {
                if !all.contains(&snap) {
                    all.push(snap);
                }
            }
            errors.extend(errs);
        }
        assert!(errors.is_empty(), "{errors:?}");
        all
    });
    let took = t0.elapsed();

    let work = tempfile::tempdir().unwrap();
    let mut hosts: Vec<String> = snapshots
        .iter()
        .map(|bytes| check_snapshot(bytes, work.path(), &extents).unwrap_or_else(|e| panic!("a reader saw a torn or broken medium: {e}")))
        .collect();
    hosts.sort();
    println!(
        "concurrency: {} whole-file reads during {REINSTALLS} re-installs in {:.1} s: {} distinct snapshots, all whole ({hosts:?})",
        reads.load(Ordering::Relaxed),
        took.as_secs_f64(),
        snapshots.len()
    );
    assert!(hosts.iter().all(|h| h == "alpha" || h == "beta"), "{hosts:?}");
    assert_eq!(hosts.len(), 2, "one snapshot per hostname, or the readers saw something else: {hosts:?}");
    // The last medium also reads as a whole ISO through xorriso.
    let preseed = String::from_utf8(iso_file(&media, "/preseed.cfg")).unwrap();
    let last = if REINSTALLS % 2 == 1 { "beta" } else { "alpha" };
    assert_eq!(answer(&preseed, "netcfg/get_hostname"), Some(last));
    let leftovers: Vec<PathBuf> = fs::read_dir(env.state.join("vms/web1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
