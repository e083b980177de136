//! Machines' volumes: a remote admin gives a size and the configured pool
//! makes the volume; only root on the host names an existing one, and
//! whatever names it is compared by identity, never under the state dir,
//! never one a registered machine already uses, under a registry-wide lock.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PW_HASH: &str =
    "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

fn add(env: &Env, who: As, vm: &str, n: u8, volume: &str) -> Out {
    let a = common::shared::machine_add(OWNER, vm, n, volume);
    env.run(who, &a.iter().map(String::as_str).collect::<Vec<_>>(), b"")
}

fn error_message(o: &Out) -> String {
    o.json()["error"]["message"].as_str().unwrap_or_default().to_owned()
}

/// A remote admin's `size=` makes a sparse 0600 file in the pool that an
/// install then uses as the guest's disk; `--purge-volume` removes it, but
/// not while the guest runs, and never a volume root imported.
#[test]
fn a_remote_admin_gets_a_pool_volume_an_install_uses_and_purge_removes() {
    let env = Env::new();
    env.import("bookworm", false);
    let j = add(&env, As::Remote(ADMIN), "vm1", 1, "size=20G").ok().json();
    let disk = PathBuf::from(j["disk"].as_str().unwrap());
    assert_eq!(disk, env.pool_dir().join("vm1.img"));
    assert_eq!(j["volume"], "pool");
    let m = fs::symlink_metadata(&disk).unwrap();
    assert!(m.is_file());
    assert_eq!((m.len(), m.blocks(), m.mode() & 0o7777, m.uid()), (20 << 30, 0, 0o600, 0), "not a sparse 0600 root file");

    // The install runs on it: the xl config (Xen's own parser) has it as
    // the guest's disk.
    env.run(As::Root, &["machine", "remove", "vm1"], b"").ok();
    assert!(disk.exists(), "a remove without --purge-volume removed the volume");
    fs::remove_file(&disk).unwrap();
    let j = env.run(As::Remote(ADMIN), &[&common::shared::machine_add(OWNER, "vm1", 1, "size=1G").iter().map(String::as_str).collect::<Vec<_>>()[..], &["image=bookworm"]].concat(), b"").ok().json();
    assert_eq!(j["disk"], disk.to_str().unwrap());
    let j = env.run(As::Remote(OWNER), &["install", "vm1", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing", "{j}");
    assert!(env.xl_running("vm1"));
    let parsed = check_xl_config(&env.vm_file("vm1", "domain.cfg"));
    assert!(parsed.contains(&format!("\"pdev_path\": \"{}\"", disk.display())), "{parsed}");

    // Purging needs the guest stopped, an admin, and a volume of the pool.
    let before = env.snapshot();
    let o = env.run(As::Remote(ADMIN), &["machine", "remove", "vm1", "--purge-volume", "--json"], b"");
    assert_eq!(o.code, 5, "{o:?}");
    assert!(disk.exists() && env.snapshot() == before, "a refused purge changed something");
    let o = env.run(As::Remote(OWNER), &["machine", "remove", "vm1", "--purge-volume", "--json"], b"");
    assert_eq!(o.code, 3, "{o:?}");
    env.xl_guest_finishes("vm1");
    let j = env.run(As::Remote(ADMIN), &["machine", "remove", "vm1", "--purge-volume", "--json"], b"").ok().json();
    assert_eq!(j["volume_removed"], true);
    assert!(!disk.exists(), "the volume is still there");
    assert_eq!(env.run(As::Remote(ADMIN), &["machine", "show", "vm1"], b"").code, 4);

    // A volume root imported is never purged.
    let vol = env.volume("vm3");
    add(&env, As::Root, "vm3", 3, &format!("disk={}", vol.display())).ok();
    let before = env.snapshot();
    let o = env.run(As::Root, &["machine", "remove", "vm3", "--purge-volume", "--json"], b"");
    assert_eq!(o.code, 2, "{o:?}");
    assert!(error_message(&o).contains("imported"), "{o:?}");
    assert_eq!(env.snapshot(), before);
    assert!(vol.exists());
}

/// A qcow2 pool: a blank qcow2 image of the size asked, which qemu-img
/// checks, and a clone-ready disk (`format=qcow2` in the domain config).
#[test]
fn a_qcow2_pool_makes_images_qemu_accepts() {
    let env = Env::new();
    env.set_volumes(&format!("kind = \"file\"\ndir = \"{}\"\nformat = \"qcow2\"", env.pool_dir().display()));
    env.import("bookworm", false);
    let disk = PathBuf::from(add(&env, As::Remote(ADMIN), "vm2", 2, "size=4G").ok().json()["disk"].as_str().unwrap());
    assert_eq!(disk, env.pool_dir().join("vm2.qcow2"));
    assert_eq!(fs::metadata(&disk).unwrap().mode() & 0o7777, 0o600);
    sh(Command::new("qemu-img").args(["check", "-q", "-f", "qcow2"]).arg(&disk));
    let info: serde_json::Value =
        serde_json::from_str(&sh(Command::new("qemu-img").args(["info", "--output=json"]).arg(&disk))).unwrap();
    assert_eq!(info["virtual-size"], 4u64 << 30, "{info}");
    assert!(info.get("backing-filename").is_none(), "{info}");
    let j = env.run(As::Remote(OWNER), &["install", "vm2", "image=bookworm", "--no-start", "--json"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "prepared");
    let text = fs::read_to_string(env.vm_file("vm2", "domain.cfg")).unwrap();
    assert!(text.contains(&format!("format=qcow2, vdev=xvda, access=rw, target={}", disk.display())), "{text}");
}

fn bind(from: &Path, at: &Path) -> Mounted {
    fs::create_dir_all(at).unwrap();
    sh(Command::new("mount").arg("--bind").arg(from).arg(at));
    Mounted(at.to_path_buf())
}

/// A loop device over `file`, if the host has loop devices; detached on drop.
struct Loop(String);
impl Loop {
    fn new(file: &Path) -> Option<Loop> {
        let o = Command::new("losetup").args(["--find", "--show"]).arg(file).output().ok()?;
        o.status.success().then(|| Loop(String::from_utf8_lossy(&o.stdout).trim().to_owned()))
    }
}
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// Every refused way to name a disk: exit 2 or 3, state dir unchanged.
#[test]
fn refused_disks_change_nothing() {
    let env = Env::new();
    let registered = env.volume("reg");
    add(&env, As::Root, "reg", 1, &format!("disk={}", registered.display())).ok();
    // Files inside the state dir, and ways to reach them from outside.
    let inside = env.state.join("templates/t/root.img");
    fs::create_dir_all(inside.parent().unwrap()).unwrap();
    fs::File::create(&inside).unwrap().set_len(64 << 20).unwrap();
    let link_in = env.root().join("link-in.img");
    std::os::unix::fs::symlink(&inside, &link_in).unwrap();
    let _bound = bind(&env.state, &env.root().join("bound-state"));
    let via_bind = env.root().join("bound-state/templates/t/root.img");
    let linked = env.root().join("two-names.img");
    fs::File::create(&linked).unwrap();
    fs::hard_link(&linked, env.root().join("second-name.img")).unwrap();
    let alias = env.root().join("alias-of-reg");
    std::os::unix::fs::symlink(&registered, &alias).unwrap();
    let _bound_vols = bind(env.root(), &env.root().join("bound-root"));
    let reg_by_bind = env.root().join("bound-root").join(registered.file_name().unwrap());
    let loop_in = Loop::new(&inside);
    let loop_reg = Loop::new(&registered);
    let before = env.snapshot();

    let mut cases: Vec<(As, String, i32, &str)> = vec![
        // A remote admin never names a path, even a good one.
        (As::Remote(ADMIN), format!("disk={}", env.volume("fresh").display()), 3, "root"),
        (As::Remote(STRANGER), "size=1G".into(), 3, "admin"),
        (As::Root, format!("disk={}", inside.display()), 2, "state directory"),
        (As::Root, format!("disk={}", link_in.display()), 2, "state directory"),
        (As::Root, format!("disk={}", via_bind.display()), 2, "state directory"),
        (As::Root, format!("disk={}", linked.display()), 2, "hard link"),
        (As::Root, format!("disk={}", env.root().join("nope.img").display()), 2, "does not exist"),
        (As::Root, "disk=/dev/null".into(), 2, "not a block device"),
        (As::Root, format!("disk={}", env.root().display()), 2, "not a block device"),
        (As::Root, format!("disk={}", registered.display()), 2, "machine reg"),
        (As::Root, format!("disk={}", alias.display()), 2, "machine reg"),
        (As::Root, format!("disk={}", reg_by_bind.display()), 2, "machine reg"),
        (As::Remote(ADMIN), "size=63M".into(), 2, "size"),
    ];
    if let (Some(a), Some(b)) = (&loop_in, &loop_reg) {
        cases.push((As::Root, format!("disk={}", a.0), 2, "state directory"));
        cases.push((As::Root, format!("disk={}", b.0), 2, "machine reg"));
    } else {
        eprintln!("no loop devices here: the loop-device aliases are not tried");
    }
    for (who, volume, code, says) in &cases {
        let o = add(&env, *who, "new1", 2, volume);
        assert_eq!(o.code, *code, "{who:?} {volume}: {o:?}");
        assert!(error_message(&o).contains(says), "{volume}: {o:?}");
        assert_same_tree(&before, &env.snapshot(), volume);
    }
    // Same name, MAC or IP as a registered machine.
    let fresh = env.volume("fresh");
    for (vm, n, what) in [("reg", 2, "name"), ("new1", 1, "mac")] {
        let o = add(&env, As::Root, vm, n, &format!("disk={}", fresh.display()));
        assert_eq!(o.code, 2, "{what}: {o:?}");
        assert_same_tree(&before, &env.snapshot(), what);
    }
    // No pool configured: size= is refused, and says why.
    env.set_volumes("");
    let o = add(&env, As::Remote(ADMIN), "new1", 2, "size=1G");
    assert_eq!(o.code, 2, "{o:?}");
    assert!(error_message(&o).contains("no volume pool"), "{o:?}");
    assert_same_tree(&before, &env.snapshot(), "no pool");
}

/// 16 adds at once, each naming one disk by another name (itself,
/// symlinks, a chain of them, a bind mount of its directory, a loop device
/// over it and a symlink to that): exactly one is registered.
#[test]
fn sixteen_concurrent_adds_of_one_disk_register_one_machine() {
    let env = Env::new();
    let disk = env.volume("shared");
    let _bound = bind(env.root(), &env.root().join("bound"));
    let lo = Loop::new(&disk);
    let mut names: Vec<PathBuf> = vec![disk.clone(), env.root().join("bound").join(disk.file_name().unwrap())];
    if let Some(l) = &lo {
        names.push(PathBuf::from(&l.0));
        let to_loop = env.root().join("to-loop");
        std::os::unix::fs::symlink(&l.0, &to_loop).unwrap();
        names.push(to_loop);
    } else {
        eprintln!("no loop devices here: the loop-device aliases are not tried");
    }
    let mut prev = disk.clone();
    while names.len() < 16 {
        let l = env.root().join(format!("alias{}", names.len()));
        // Every other alias links to the previous one: chains of links.
        let target = if names.len().is_multiple_of(2) { prev.clone() } else { disk.clone() };
        std::os::unix::fs::symlink(&target, &l).unwrap();
        prev = l.clone();
        names.push(l);
    }
    let outs: Vec<Out> = std::thread::scope(|s| {
        let hs: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let env = &env;
                s.spawn(move || add(env, As::Root, &format!("vm{i}"), i as u8 + 1, &format!("disk={}", name.display())))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<usize> = (0..outs.len()).filter(|i| outs[*i].code == 0).collect();
    assert_eq!(won.len(), 1, "{outs:#?}");
    for o in &outs {
        assert!([0, 2, 5].contains(&o.code), "{o:?}");
    }
    let list = env.run(As::Remote(ADMIN), &["list", "--json"], b"").ok().json();
    assert_eq!(list["machines"].as_array().unwrap().len(), 1, "{list}");
}

/// The registry lock is taken for changes: while another holds it, an add
/// waits a little, then is `busy` with nothing changed.
#[test]
fn a_held_registry_lock_means_busy_after_a_short_wait() {
    let env = Env::new();
    add(&env, As::Remote(ADMIN), "vm1", 1, "size=1G").ok();
    let dir = fs::File::open(env.state.join("machines")).unwrap();
    let held = nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
    let before = env.snapshot();
    let pool_before = fs::read_dir(env.pool_dir()).unwrap().count();
    let o = add(&env, As::Remote(ADMIN), "vm2", 2, "size=1G");
    assert_eq!(o.code, 5, "{o:?}");
    assert_eq!(env.snapshot(), before);
    assert_eq!(fs::read_dir(env.pool_dir()).unwrap().count(), pool_before, "a volume was made");
    drop(held);
    add(&env, As::Remote(ADMIN), "vm2", 2, "size=1G").ok();
}

/// Writes an executable stand-in for an LVM tool that accepts exactly the
/// argv `want` (logging it) and fails on anything else.
fn lvm_standin(dir: &Path, name: &str, want: &str) -> PathBuf {
    let p = dir.join(name);
    write_executable(
        &p,
        &format!(
            "#!/bin/sh\n# A stand-in for {name}: there is no device-mapper here.\n\
             echo \"$*\" >> {log}\n\
             if [ \"$*\" = '{want}' ]; then exit 0; fi\n\
             echo \"{name}: unexpected arguments: $*\" >&2\nexit 3\n",
            log = dir.join("log").display()
        ),
    );
    p
}

/// The LVM pool, against stand-ins for lvcreate, lvremove and blkdiscard
/// that check the exact argv they get (these machines have no
/// device-mapper, so the real ones cannot run): the LV is named after the
/// machine, sized in MiB, zeroed whole before the machine is registered (a
/// thick LV's extents may hold a former machine's data), removed by
/// VG/name; a failing lvcreate registers nothing.
#[test]
fn an_lvm_pool_runs_lvcreate_and_lvremove_by_argv() {
    let env = Env::new();
    let dir = env.root().join("lvm");
    fs::create_dir(&dir).unwrap();
    let lvcreate = lvm_standin(&dir, "lvcreate", "--yes --name vm1 --wipesignatures y --zero y --size 20480m testvg");
    let lvremove = lvm_standin(&dir, "lvremove", "--yes testvg/vm1");
    // Zeroing happens while the machine is not registered yet.
    let blkdiscard = dir.join("blkdiscard");
    write_executable(
        &blkdiscard,
        &format!(
            "#!/bin/sh\necho \"blkdiscard $*\" >> {log}\n\
             [ -e {registered} ] && {{ echo 'zeroed after registration' >&2; exit 4; }}\n\
             [ \"$*\" = '--zeroout /dev/testvg/vm1' ] && exit 0\necho \"unexpected: $*\" >&2\nexit 3\n",
            log = dir.join("log").display(),
            registered = env.state.join("machines/vm1.json").display()
        ),
    );
    env.set_volumes(&format!(
        "kind = \"lvm\"\nvg = \"testvg\"\nlvcreate = \"{}\"\nlvremove = \"{}\"\nblkdiscard = \"{}\"",
        lvcreate.display(),
        lvremove.display(),
        blkdiscard.display()
    ));
    let j = add(&env, As::Remote(ADMIN), "vm1", 1, "size=20G").ok().json();
    assert_eq!(j["disk"], "/dev/testvg/vm1");
    assert_eq!(j["volume"], "pool");
    // lvcreate refuses (the stand-in expects only vm1's argv): nothing is
    // registered.
    let before = env.snapshot();
    let o = add(&env, As::Remote(ADMIN), "vm2", 2, "size=1G");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(error_message(&o).contains("unexpected arguments"), "{o:?}");
    assert_eq!(env.snapshot(), before);
    env.run(As::Remote(ADMIN), &["machine", "remove", "vm1", "--purge-volume"], b"").ok();
    assert_eq!(
        fs::read_to_string(dir.join("log")).unwrap(),
        "--yes --name vm1 --wipesignatures y --zero y --size 20480m testvg\n\
         blkdiscard --zeroout /dev/testvg/vm1\n\
         --yes --name vm2 --wipesignatures y --zero y --size 1024m testvg\n\
         --yes testvg/vm1\n"
    );
    assert_eq!(env.run(As::Remote(ADMIN), &["machine", "show", "vm1"], b"").code, 4);

    // Zeroing fails: the new LV is removed again and nothing is registered.
    fs::remove_file(dir.join("log")).unwrap();
    write_executable(&blkdiscard, &format!("#!/bin/sh\necho \"blkdiscard $*\" >> {}\necho 'BLKZEROOUT: I/O error' >&2\nexit 1\n", dir.join("log").display()));
    let before = env.snapshot();
    let o = add(&env, As::Remote(ADMIN), "vm1", 1, "size=20G");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(error_message(&o).contains("could not be zeroed"), "{o:?}");
    assert_eq!(env.snapshot(), before);
    assert_eq!(
        fs::read_to_string(dir.join("log")).unwrap(),
        "--yes --name vm1 --wipesignatures y --zero y --size 20480m testvg\n\
         blkdiscard --zeroout /dev/testvg/vm1\n\
         --yes testvg/vm1\n"
    );
}

/// A thin pool must zero the blocks it provisions (asked of `lvs` before
/// anything is made); one that does not is refused with how to fix it.
#[test]
fn a_thin_pool_that_does_not_zero_new_blocks_is_refused() {
    let env = Env::new();
    let dir = env.root().join("lvm");
    fs::create_dir(&dir).unwrap();
    let lvcreate = lvm_standin(&dir, "lvcreate", "--yes --name vm1 --virtualsize 1024m --thin testvg/pool0");
    let lvs = dir.join("lvs");
    let lvs_says = |zero: &str| {
        write_executable(
            &lvs,
            &format!(
                "#!/bin/sh\necho \"lvs $*\" >> {log}\n\
                 [ \"$*\" = '--noheadings --binary --options zero testvg/pool0' ] || exit 3\necho '  {zero}'\n",
                log = dir.join("log").display()
            ),
        )
    };
    env.set_volumes(&format!(
        "kind = \"lvm\"\nvg = \"testvg\"\nthinpool = \"pool0\"\nlvcreate = \"{}\"\nlvs = \"{}\"",
        lvcreate.display(),
        lvs.display()
    ));
    lvs_says("0");
    // (The registry's directory exists on any host that has machines.)
    fs::DirBuilder::new().mode(0o700).create(env.state.join("machines")).unwrap();
    let before = env.snapshot();
    let o = add(&env, As::Remote(ADMIN), "vm1", 1, "size=1G");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(error_message(&o).contains("lvchange --zero y testvg/pool0"), "{o:?}");
    assert_eq!(env.snapshot(), before);
    assert_eq!(fs::read_to_string(dir.join("log")).unwrap(), "lvs --noheadings --binary --options zero testvg/pool0\n", "lvcreate ran");
    lvs_says("1");
    add(&env, As::Remote(ADMIN), "vm1", 1, "size=1G").ok();
    assert!(fs::read_to_string(dir.join("log")).unwrap().ends_with("--yes --name vm1 --virtualsize 1024m --thin testvg/pool0\n"));
}

/// A pool directory inside the state dir (directly or through a symlink),
/// or one others could change, makes no volume and registers nothing.
#[test]
fn an_unsafe_pool_directory_is_refused() {
    let env = Env::new();
    add(&env, As::Remote(ADMIN), "vm1", 1, "size=1G").ok();
    let link = env.root().join("state-link");
    std::os::unix::fs::symlink(&env.state, &link).unwrap();
    let open = env.root().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let before = env.snapshot();
    for (dir, says) in [
        (env.state.join("vols"), "inside the state directory"),
        (link.join("vols"), "inside the state directory"),
        (open.clone(), "group- or world-writable"),
    ] {
        env.set_volumes(&format!("kind = \"file\"\ndir = \"{}\"", dir.display()));
        let o = add(&env, As::Remote(ADMIN), "vm2", 2, "size=1G");
        assert_eq!(o.code, 1, "{dir:?}: {o:?}");
        assert!(error_message(&o).contains(says), "{dir:?}: {o:?}");
        assert_same_tree(&before, &env.snapshot(), says);
    }
    assert_eq!(fs::read_dir(&open).unwrap().count(), 0);
}

/// A registered volume named through a link that dangles (its file gone)
/// until the pool makes a volume there: the new volume is that machine's
/// disk, so it is refused and removed again.
#[test]
fn a_pool_volume_that_a_registered_link_names_is_refused() {
    let env = Env::new();
    fs::create_dir_all(env.pool_dir()).unwrap();
    let pooled = env.pool_dir().join("vm2.img");
    fs::File::create(&pooled).unwrap().set_len(64 << 20).unwrap();
    let link = env.root().join("link.img");
    std::os::unix::fs::symlink(&pooled, &link).unwrap();
    add(&env, As::Root, "vm1", 1, &format!("disk={}", link.display())).ok();
    fs::remove_file(&pooled).unwrap();
    let before = env.snapshot();
    let o = add(&env, As::Remote(ADMIN), "vm2", 2, "size=1G");
    assert_eq!(o.code, 2, "{o:?}");
    assert!(error_message(&o).contains("machine vm1"), "{o:?}");
    assert!(!pooled.exists(), "the refused machine's volume was left");
    assert_eq!(env.snapshot(), before);
}

/// A machine registered in cluster mode (`size=`, no path) has no volume
/// on a host without `[cluster]`: installing it, with an image or a
/// template, is refused (exit 2, with why) before stdin is read, and
/// nothing in the state dir changes; purging its volume is refused too.
#[test]
fn a_machine_whose_disk_is_its_instances_has_no_host_volume() {
    let env = Env::new();
    env.machine("gm1", 1, None);
    let file = env.state.join("machines/gm1.json");
    let mut j: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let o = j.as_object_mut().unwrap();
    o.remove("disk");
    o.insert("volume".into(), "instance".into());
    o.insert("size".into(), (4u64 << 30).into());
    fs::write(&file, serde_json::to_vec_pretty(&j).unwrap()).unwrap();
    let before = env.snapshot();
    for args in [&["install", "gm1", "template=tpl", "--json"][..], &["install", "gm1", "image=deb12", "--no-start", "--json"][..]] {
        let o = env.run(As::Remote(OWNER), args, b"a password\n");
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(error_message(&o).contains("no volume on this host"), "{o:?}");
        assert_same_tree(&before, &env.snapshot(), "a refused install changed the state dir");
    }
    let o = env.run(As::Root, &["machine", "remove", "gm1", "--purge-volume", "--json"], b"");
    assert_eq!(o.code, 2, "{o:?}");
    assert!(error_message(&o).contains("gnt-instance remove"), "{o:?}");
    assert_same_tree(&before, &env.snapshot(), "a refused remove changed the state dir");
    let show = env.run(As::Root, &["machine", "show", "gm1", "--json"], b"").ok().json();
    assert_eq!((show["volume"].as_str(), show["size"].as_u64(), show.get("disk")), (Some("instance"), Some(4 << 30), None), "{show}");
}
