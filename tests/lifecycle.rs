//! A machine's life after `install`: every decision is taken under the
//! machine's lock on an observation made under it, a killed request
//! leaves a record the next one settles, a finished install is never
//! cancelled, and the media and seeds (they hold the password hash) go
//! as soon as an install ends, or expire unused.
//!
//! With the xl stand-in (Xen's own parser checks every config) and the
//! real golden template: the guest's console is written by the test, as
//! xenconsoled would log it. The qemu boot tests prove the same states
//! with real guests.

mod common;

use common::*;
use guest_installer::template;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

fn status(env: &Env, vm: &str) -> serde_json::Value {
    env.run(As::Remote(OWNER), &["status", vm, "--json"], b"").ok().json()
}

/// Where xenconsoled logs the guest's console (the harness's console_dir).
fn xl_console(env: &Env, vm: &str) -> PathBuf {
    env.root().join("console").join(format!("guest-{vm}.log"))
}

fn xl_file(env: &Env, name: &str) -> PathBuf {
    env.xl.parent().unwrap().join(name)
}

/// A clone of the template on a qcow2 volume of its own, started.
fn started_clone(env: &Env, vm: &str, n: u8) -> PathBuf {
    let vol = env.volume_qcow2(vm);
    env.machine_with(vm, n, None, &[&format!("disk={}", vol.display())]);
    let j = env.run(As::Remote(OWNER), &["install", vm, "template=tpl", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing", "{j}");
    assert!(env.xl_running(vm));
    vol
}

/// The guest's identity unit prints that it applied the seed.
fn identity_applies(env: &Env, vm: &str) {
    fs::write(xl_console(env, vm), format!("[    1.0] Linux version 6.1.0\r\n{}\r\n", template::APPLIED_LINE)).unwrap();
}

/// A clone whose identity applied is finished: `cancel` refuses it (exit
/// 2) and leaves the running guest and its volume alone, even though
/// nobody ran `status` since. (Cancel used to destroy it and zero its
/// volume's first MiB.)
#[test]
fn cancel_after_the_identity_applied_refuses_and_keeps_the_running_clone() {
    let env = Env::new();
    add_template(&env);
    let vol = started_clone(&env, "c1", 3);
    identity_applies(&env, "c1");
    let before = fs::read(&vol).unwrap();
    let o = env.run(As::Remote(OWNER), &["cancel", "c1", "--json"], b"");
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(o.json()["error"]["kind"], "invalid");
    assert!(o.json()["error"]["message"].as_str().unwrap().contains("finished"), "{o:?}");
    assert!(env.xl_running("c1"), "cancel stopped a finished clone");
    assert!(fs::read(&vol).unwrap() == before, "cancel changed the volume of a finished clone");
    let s = status(&env, "c1");
    assert_eq!((s["state"].as_str(), s["running"].as_bool()), (Some("installed"), Some(true)), "{s}");
    // The seed (it holds the hash) went when the install was recorded, and
    // nothing the guest restarts from names it: the running domain had it
    // detached, and every path in the domain config exists.
    assert!(!env.vm_file("c1", "identity.img").exists());
    let detached = fs::read_to_string(xl_file(&env, "detached/c1")).unwrap_or_default();
    assert_eq!(detached.trim(), "xvdb", "the seed disk was not detached from the running domain");
    assert_paths_exist(&env.vm_file("c1", "domain.cfg"));
    let listed = env.run(As::Remote(OWNER), &["list", "--json"], b"").ok().json();
    assert_eq!(listed["machines"][0]["running"], true, "{listed}");
}

/// `status` observes the guest only once it holds the machine's lock. The
/// test holds the window between observation and lock open (the stand-in
/// answers `domid` slowly once) while a second request clones the machine
/// anew: that new clone must never be wiped on the first request's view of
/// the old, stopped one.
#[test]
fn a_clone_started_during_another_requests_observation_is_never_wiped() {
    let env = Env::new();
    add_template(&env);
    let vol = started_clone(&env, "w1", 4);
    // The first clone dies before applying its identity.
    fs::write(xl_console(&env, "w1"), "[    1.0] Linux version 6.1.0\r\nKernel panic - not syncing\r\n").unwrap();
    env.xl_guest_finishes("w1");

    fs::write(xl_file(&env, "delay-domid-once"), "7").unwrap();
    let slow_status = {
        let mut c = std::process::Command::new(bin());
        c.args(["status", "w1", "--json"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("GUEST_INSTALLER_CONFIG", &env.config)
            .env("REMOTE_USER", OWNER)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    // Wait until the slow status is inside its observation.
    let mut waited = 0;
    while xl_file(&env, "delay-domid-once").exists() && waited < 600 {
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    let second = env.run(As::Remote(OWNER), &["install", "w1", "template=tpl", "--json"], PW_HASH.as_bytes());
    if second.code == 0 {
        // The new clone boots (xenconsoled logs it); its identity unit has
        // not run yet.
        fs::write(xl_console(&env, "w1"), "[    0.0] Linux version 6.1.0\r\n").unwrap();
    }
    Out::from_output(slow_status.wait_with_output().unwrap()).of_request(&["status", "w1", "--json"]).ok().json();
    match second.code {
        // The first request held the lock: the second was refused at once.
        5 => {}
        0 => {
            let head = std::process::Command::new("qemu-img")
                .args(["compare", "-q", "-f", "qcow2", "-F", "raw"])
                .arg(&vol)
                .arg(env.state.join("templates/tpl/disk.img"))
                .status()
                .unwrap();
            assert!(head.success(), "the new clone was wiped");
            assert!(env.xl_running("w1"), "the new clone was stopped");
            assert_eq!(status(&env, "w1")["state"], "installing");
        }
        _ => panic!("second request: {second:?}"),
    }
    // Whichever order: nothing runs without a record, and the state is one
    // the lifecycle knows.
    let s = status(&env, "w1");
    assert!(["failed", "installing"].contains(&s["state"].as_str().unwrap()), "{s}");
    assert_eq!(s["state"] == "installing", env.xl_running("w1"), "{s}");
}

/// Requests killed with SIGKILL at random points around the guest's start
/// (the stand-in's `create` is slowed to hold that window open), 16 times:
/// the next request settles what was left; a guest never runs without a
/// record of it, a recorded install never lacks its guest, and the media
/// exist exactly while an install is pending.
#[test]
fn killed_between_start_and_record_the_next_request_settles() {
    let env = Env::new();
    env.import("deb12", false);
    env.machine("k1", 5, Some("deb12"));
    fs::write(xl_file(&env, "delay-create"), "0.4").unwrap();
    let mut rng = Rng(0x05ee_d1e5);
    let mut outcomes = std::collections::BTreeMap::new();
    for round in 0..16 {
        let delay = Duration::from_millis(100 + rng.below(1200));
        kill_after(&env, &["install", "k1"], PW_HASH.as_bytes(), delay);
        // The stand-in's `create` runs on in its own process group, as a
        // real `xl create` would: give it time to finish.
        std::thread::sleep(Duration::from_millis(600));
        let raw = fs::read_to_string(env.vm_file("k1", "state.json")).ok();
        let s = status(&env, "k1");
        let state = s["state"].as_str().unwrap().to_owned();
        let running = env.xl_running("k1");
        let media = env.vm_file("k1", "install.qcow2").exists();
        let ctx = format!("round {round}, killed after {delay:?}, state file before: {raw:?}, status: {s}");
        assert_ne!(state, "starting", "status left a start unsettled: {ctx}");
        assert_eq!(running, state == "installing", "a guest without a record, or a record without its guest: {ctx}");
        assert_eq!(media, ["prepared", "installing"].contains(&state.as_str()), "media: {ctx}");
        *outcomes.entry(state.clone()).or_insert(0) += 1;
        if running {
            env.run(As::Remote(OWNER), &["cancel", "k1"], b"").ok();
            assert!(!env.xl_running("k1"));
        }
    }
    eprintln!("outcomes over 16 kills: {outcomes:?}");
}

/// The package's timer runs `settle` every minute: an install that ended
/// is recorded and its media (they hold the hash) removed with no `status`
/// from anyone; `--no-start` media expire after `prepared_media_s`; a
/// machine another request holds is left to it; and remote callers may
/// not run it.
#[test]
fn settle_removes_media_as_installs_end_and_expires_unused_media() {
    let env = Env::new();
    // A day: nothing expires however slowly the steps below run.
    let text = fs::read_to_string(&env.config).unwrap().replace("[timeouts]\n", "[timeouts]\nprepared_media_s = 86400\n");
    fs::write(&env.config, text).unwrap();
    env.import("deb12", false);
    env.machine("s1", 6, Some("deb12"));
    env.machine("s2", 7, Some("deb12"));
    env.machine("s3", 8, Some("deb12"));
    env.run(As::Remote(OWNER), &["install", "s1"], PW_HASH.as_bytes()).ok();
    env.run(As::Remote(OWNER), &["install", "s2", "--no-start"], PW_HASH.as_bytes()).ok();
    assert!(env.vm_file("s1", "install.qcow2").exists() && env.vm_file("s2", "install.qcow2").exists());

    let o = env.run(As::Remote(ADMIN), &["settle", "--json"], b"");
    assert_eq!(o.code, 3, "{o:?}");

    // s1's installer finishes (its console says so) and its domain goes.
    fs::write(xl_console(&env, "s1"), "Installation complete\r\nreboot: Restarting system\r\n").unwrap();
    env.xl_guest_finishes("s1");
    let j = env.run(As::Root, &["settle", "--json"], b"").ok().json();
    let row = |j: &serde_json::Value, vm: &str| j["machines"].as_array().unwrap().iter().find(|r| r["vm"] == vm).cloned().unwrap();
    assert_eq!(row(&j, "s1")["state"], "installed", "{j}");
    assert!(!env.vm_file("s1", "install.qcow2").exists(), "settle left the finished install's media");
    // Not yet expired.
    assert_eq!(row(&j, "s2")["state"], "prepared", "{j}");
    assert!(env.vm_file("s2", "install.qcow2").exists());
    assert_eq!(row(&j, "s3")["state"], "none", "{j}");

    // Now they expire at once, with no waiting.
    let text = fs::read_to_string(&env.config).unwrap().replace("prepared_media_s = 86400\n", "prepared_media_s = 0\n");
    fs::write(&env.config, text).unwrap();
    // A machine whose lock another request holds is not touched.
    let held = nix::fcntl::Flock::lock(
        fs::OpenOptions::new().read(true).write(true).open(env.state.join("locks/s2.lock")).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, e)| e)
    .unwrap();
    let j = env.run(As::Root, &["settle", "--json"], b"").ok().json();
    assert_eq!(row(&j, "s2")["state"], "busy", "{j}");
    assert!(env.vm_file("s2", "install.qcow2").exists());
    drop(held);
    let j = env.run(As::Root, &["settle", "--json"], b"").ok().json();
    assert_eq!(row(&j, "s2")["state"], "cancelled", "{j}");
    assert!(!env.vm_file("s2", "install.qcow2").exists(), "--no-start media outlived their time");
    let s = status(&env, "s2");
    assert!(s["reason"].as_str().unwrap().contains("expired"), "{s}");
}

/// A prepared clone whose media expire goes too: its seed is removed and
/// the clone on the volume wiped (it never ran: nothing of it is anyone's).
#[test]
fn an_expired_prepared_clone_is_discarded() {
    let env = Env::new();
    let text = fs::read_to_string(&env.config).unwrap().replace("[timeouts]\n", "[timeouts]\nprepared_media_s = 0\n");
    fs::write(&env.config, text).unwrap();
    add_template(&env);
    let vol = env.volume_qcow2("e1");
    env.machine_with("e1", 9, None, &[&format!("disk={}", vol.display())]);
    env.run(As::Remote(OWNER), &["install", "e1", "template=tpl", "--no-start"], PW_HASH.as_bytes()).ok();
    assert!(env.vm_file("e1", "identity.img").exists());
    let j = env.run(As::Root, &["settle", "--json"], b"").ok().json();
    assert_eq!(j["machines"][0]["state"], "cancelled", "{j}");
    assert!(!env.vm_file("e1", "identity.img").exists());
    let same = std::process::Command::new("qemu-img")
        .args(["compare", "-q", "-f", "qcow2", "-F", "raw"])
        .arg(&vol)
        .arg(env.state.join("templates/tpl/disk.img"))
        .status()
        .unwrap();
    assert!(!same.success(), "the expired clone was not wiped");
    assert!(Path::new(&vol).exists());
}

/// Every absolute path a domain config names (disk targets, kernel)
/// exists, and the config is one Xen's own parser accepts.
fn assert_paths_exist(cfg: &Path) {
    let text = fs::read_to_string(cfg).unwrap();
    assert!(!text.contains("identity.img"), "the restart config names the seed:\n{text}");
    for word in text.split(|c: char| c == '"' || c == ',' || c.is_whitespace()) {
        let path = word.strip_prefix("target=").unwrap_or(word);
        if path.starts_with('/') {
            assert!(Path::new(path).exists(), "{path} named in the domain config does not exist:\n{text}");
        }
    }
    check_xl_config(cfg);
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// xenconsoled's log outlives a machine: a machine removed and added again
/// under the same name (for another owner) must not show the new owner the
/// old one's console, nor may an install prepared with --no-start show an
/// earlier run's.
#[test]
fn a_new_machine_of_an_old_name_never_sees_the_old_console() {
    let env = Env::new();
    env.import("bookworm", false);
    env.machine("web1", 1, Some("bookworm"));
    env.run(As::Remote(OWNER), &["install", "web1", "--json"], PW_HASH.as_bytes()).ok();
    fs::write(xl_console(&env, "web1"), "root@web1:~# cat /root/old-owners-secret\r\nhunter2-of-the-old-owner\r\n").unwrap();
    assert!(status(&env, "web1")["console_tail"].as_str().unwrap().contains("old-owner"));
    env.run(As::Remote(OWNER), &["cancel", "web1"], b"").ok();
    // A reinstall prepared but not started: its status has no console yet.
    env.run(As::Remote(OWNER), &["install", "web1", "--no-start", "--json"], PW_HASH.as_bytes()).ok();
    let s = status(&env, "web1");
    assert_eq!(s["state"], "prepared");
    assert_eq!(s["console_tail"], serde_json::Value::Null, "{s}");
    // Removed, then added again for someone else.
    env.run(As::Remote(OWNER), &["cancel", "web1"], b"").ok();
    env.run(As::Root, &["machine", "remove", "web1"], b"").ok();
    assert!(!xl_console(&env, "web1").exists(), "the old console log is still there");
    assert!(!xl_console(&env, "web1").with_extension("log.old").exists());
    env.machine("web1", 1, Some("bookworm"));
    env.run(As::Remote(OWNER), &["install", "web1", "--json"], PW_HASH.as_bytes()).ok();
    let s = status(&env, "web1");
    assert!(!s.to_string().contains("old-owner"), "{s}");
}

/// A clone is named the same way by `status` (text and JSON) and `list`:
/// its template and that template's image.
#[test]
fn a_clone_is_named_by_its_template_in_status_and_list_alike() {
    let env = Env::new();
    add_template(&env);
    started_clone(&env, "c9", 9);
    let s = status(&env, "c9");
    let text = env.run(As::Remote(OWNER), &["status", "c9"], b"").ok().stdout.clone();
    let l = env.run(As::Remote(OWNER), &["list", "--json"], b"").ok().json();
    let row = l["machines"].as_array().unwrap().iter().find(|m| m["vm"] == "c9").unwrap().clone();
    assert_eq!(s["template"], "tpl");
    assert_eq!((row["template"].clone(), row["image"].clone()), (s["template"].clone(), s["image"].clone()), "{row} vs {s}");
    assert!(text.starts_with(&format!("c9: installing (template tpl, image {})", s["image"].as_str().unwrap())), "{text}");
    env.run(As::Remote(OWNER), &["cancel", "c9"], b"").ok();
}
