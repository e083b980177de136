//! The install pipeline end to end with the real binary, real xorriso, a
//! real Debian installer kernel/initrd, and Xen's own config parser.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const PW_HASH: &str = "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

fn ready(vm: &str) -> Env {
    let env = Env::new();
    env.import("bookworm", false);
    env.machine(vm, 1, Some("bookworm"));
    env
}

#[test]
fn import_extracts_patches_and_freezes_the_image() {
    let env = Env::new();
    env.import("bookworm", true);
    let img = env.state.join("images/bookworm");
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(img.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source_sha256"], sha256(&installer_iso(true)));
    assert_eq!(manifest["layout"]["kernel"], "/install.amd/vmlinuz");
    assert_eq!(manifest["layout"]["xen_kernel"], "/install.amd/xen/vmlinuz");
    assert_eq!(manifest["base_iso"]["preseed_img"]["len"], guest_installer::image::RESERVED);
    assert!(img.join("base.iso").exists());
    let cfg = fs::read_to_string(img.join("tree/isolinux/isolinux.cfg")).unwrap();
    assert!(cfg.starts_with("serial 0 115200\n"), "{cfg}");
    assert!(cfg.contains("default guest-installer\n"));
    assert!(cfg.contains("# guest-installer dropped: default vesamenu.c32"));
    // Read-only, and no special bits anywhere.
    for (p, (mode, _, _)) in snapshot(&img.join("tree")) {
        if mode & 0o170000 == 0o120000 {
            continue; // symlinks have no mode of their own
        }
        assert_eq!(mode & 0o7222, 0, "{} is writable or special: {mode:o}", p.display());
    }
    let out = env.run(As::Remote(OWNER), &["images", "--json"], b"").ok().json();
    assert_eq!(out["images"][0]["name"], "bookworm");
    assert_eq!(out["images"][0]["pv"], true);
    // No leftovers of the import.
    let names: Vec<_> = fs::read_dir(env.state.join("images")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("bookworm")]);
}

/// Progress on standard error, a line per step with a time that never goes
/// back, and still exactly one JSON document on standard output; requests
/// that are not long print nothing there.
#[test]
fn import_reports_its_steps_on_stderr_and_one_document_on_stdout() {
    let env = Env::new();
    let iso = installer_iso(false);
    let sum = format!("sha256={}", sha256(&iso));
    let out = env.run(As::Root, &["image", "import", "bookworm", iso.to_str().unwrap(), &sum, "--json"], b"");
    let j = out.ok().json();
    assert_eq!((j["ok"].as_bool(), j["name"].as_str()), (Some(true), Some("bookworm")), "{j}");
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    common::steps::assert_steps(
        &out.stderr,
        &[
            "checking the room in the state directory",
            "copying and hashing the ISO (",
            "checking the ISO's SHA-256",
            "extracting the ISO's files",
            "checking the files and patching the boot menu",
            "mastering the base ISO",
            "publishing image bookworm",
        ],
    );
    assert!(!out.stderr.contains(&sum[7..]), "a digest on stderr: {out:?}");
    for args in [vec!["images", "--json"], vec!["list", "--json"], vec!["templates"]] {
        let o = env.run(As::Root, &args, b"");
        assert!(o.code == 0 && o.stderr.is_empty(), "{args:?}: {o:?}");
    }

    // A big copy (here padded, and refused for its digest) also says how
    // far it has got, each tenth; the refusal is still one document.
    let big = env.root().join("big.iso");
    fs::copy(&iso, &big).unwrap();
    fs::OpenOptions::new().write(true).open(&big).unwrap().set_len(guest_installer::steps::BIG + (44 << 20)).unwrap();
    let before = env.snapshot();
    let out = env.run(As::Root, &["--json", "image", "import", "big", big.to_str().unwrap(), &format!("sha256={}", "0".repeat(64))], b"");
    assert_eq!((out.code, out.json()["error"]["kind"].as_str()), (2, Some("invalid")), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    let tenths: Vec<String> = (1..=9).map(|k| format!("copying and hashing the ISO: {}.0 of 300.0 MiB ({k}0%)", 30 * k)).collect();
    let mut wanted = vec!["checking the room", "copying and hashing the ISO (300.0 MiB)"];
    wanted.extend(tenths.iter().map(String::as_str));
    wanted.push("checking the ISO's SHA-256");
    let lines = common::steps::assert_steps(&out.stderr, &wanted);
    // Not the end of the copy (the next step says it), nothing after the refusal.
    assert!(!lines.iter().any(|(_, t)| t.contains("(100%)")), "{lines:?}");
    assert!(lines.last().unwrap().1.starts_with("checking the ISO's SHA-256"), "{lines:?}");
    assert_eq!(env.snapshot(), before, "a refused import changed the state dir");
}

#[test]
fn bad_isos_are_refused_and_leave_nothing_behind() {
    let env = Env::new();
    let iso = installer_iso(false);
    let not_iso = env.root().join("fake.iso");
    fs::write(&not_iso, vec![0x5a; 100_000]).unwrap();
    // An ISO that is a real ISO 9660 image but no installer.
    let empty_tree = env.root().join("empty");
    fs::create_dir(&empty_tree).unwrap();
    fs::write(empty_tree.join("README"), "not an installer").unwrap();
    let plain_iso = env.root().join("plain.iso");
    sh(Command::new("xorriso").args(["-as", "mkisofs", "-quiet", "-r", "-o"]).arg(&plain_iso).arg(&empty_tree));
    let before = env.snapshot();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![iso.display().to_string(), format!("sha256={}", "0".repeat(64))], "does not match"),
        (vec![not_iso.display().to_string(), format!("sha256={}", sha256(&not_iso))], "not an ISO 9660"),
        (vec![plain_iso.display().to_string(), format!("sha256={}", sha256(&plain_iso))], "not a Debian installer"),
        (vec!["/nonexistent.iso".into(), format!("sha256={}", "0".repeat(64))], "cannot read"),
        (vec![iso.display().to_string(), "sha256=xyz".into()], "sha256"),
    ];
    for (args, msg) in cases {
        let mut a = vec!["--json", "image", "import", "bookworm"];
        a.extend(args.iter().map(String::as_str));
        let out = env.run(As::Root, &a, b"");
        assert_eq!(out.code, 2, "{out:?}");
        let j = out.json();
        assert_eq!(j["error"]["kind"], "invalid");
        assert!(j["error"]["message"].as_str().unwrap().contains(msg), "{j}");
        assert_eq!(env.snapshot(), before, "state dir changed by {a:?}");
    }
    // Importing the same name twice is refused too.
    env.import("bookworm", false);
    let out = env.run(As::Root, &["image", "import", "bookworm", iso.to_str().unwrap(), &format!("sha256={}", sha256(&iso))], b"");
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn install_no_start_builds_media_with_our_preseed_and_label() {
    let env = ready("web1");
    let pristine_bin = fs::read(env.state.join("images/bookworm/tree/isolinux/isolinux.bin")).unwrap();
    let out = env.run(As::Remote(OWNER), &["install", "web1", "hostname=www", "--no-start", "--json"], PW_HASH.as_bytes());
    let j = out.ok().json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["state"], "prepared");
    let iso = env.vm_file("web1", "install.qcow2");
    assert_eq!(iso, env.vm_file("web1", "install.qcow2"));
    assert_eq!(fs::metadata(&iso).unwrap().permissions().mode() & 0o777, 0o600);

    let preseed = String::from_utf8(iso_file(&iso, "/preseed.cfg")).unwrap();
    for line in [
        "d-i netcfg/get_hostname string www",
        "d-i netcfg/get_domain string example.org",
        "d-i netcfg/get_ipaddress string 192.0.2.11",
        "d-i netcfg/get_netmask string 255.255.255.0",
        "d-i netcfg/get_gateway string 192.0.2.1",
        "d-i netcfg/get_nameservers string 192.0.2.53",
        &format!("d-i mirror/http/hostname string {}", host_mirror().0),
        &format!("d-i passwd/root-password-crypted password {PW_HASH}"),
    ] {
        assert_eq!(preseed.lines().filter(|l| *l == line).count(), 1, "{line} missing in\n{preseed}");
    }
    let cfg = String::from_utf8(iso_file(&iso, "/isolinux/isolinux.cfg")).unwrap();
    assert!(cfg.contains("initrd=/install.amd/initrd.gz,/install.amd/preseed.img"), "{cfg}");
    // The extra initrd carries the same preseed as a newc cpio.
    let img = iso_file(&iso, "/install.amd/preseed.img");
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&img[..]), &mut raw).unwrap();
    let mut r = cpio::NewcReader::new(&raw[..]).unwrap();
    assert_eq!(r.entry().name(), "preseed.cfg");
    let mut body = String::new();
    std::io::Read::read_to_string(&mut r, &mut body).unwrap();
    // On the CD the same text is padded with newlines to the reserved size.
    assert_eq!(format!("{}\n", preseed.trim_end_matches('\n')), body);
    assert_eq!(preseed.len() as u64, guest_installer::image::RESERVED);
    // El Torito boots isolinux.
    let flat_dir = tempfile::tempdir().unwrap();
    let report = sh(Command::new("xorriso").args(["-indev"]).arg(flat_iso(&iso, flat_dir.path())).args(["-report_el_torito", "plain"]));
    assert!(report.contains("/isolinux/isolinux.bin"), "{report}");
    // The pristine isolinux.bin was not touched by -boot-info-table.
    let pristine = env.state.join("images/bookworm/tree/isolinux/isolinux.bin");
    assert!(fs::read(&pristine).unwrap() == pristine_bin, "xorriso wrote into the pristine isolinux.bin");
    // The domain config is accepted by Xen's own parser and says what we mean.
    let domain = env.vm_file("web1", "domain.cfg");
    let parsed = check_xl_config(&domain);
    assert!(parsed.contains("00:16:3e:00:00:01"), "{parsed}");
    let text = fs::read_to_string(&domain).unwrap();
    assert!(text.contains("on_reboot = \"destroy\""));
    assert!(text.contains(&format!("format=qcow2, vdev=hdc, access=ro, devtype=cdrom, target={}", iso.display())));
    // The per-VM CD is a small overlay of the image's base ISO, which it names as its backing file.
    let info = sh(Command::new("qemu-img").args(["info", "--output=json"]).arg(&iso));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["backing-filename"], env.state.join("images/bookworm/base.iso").display().to_string());
    assert!(fs::metadata(&iso).unwrap().len() < 2 << 20, "per-VM media must not copy the image");
    // Nothing started.
    assert!(!env.xl_running("web1"));
    let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "prepared");
    assert_eq!(s["image"], "bookworm");
    // No temporary files left next to the media.
    let names: Vec<String> = fs::read_dir(env.state.join("vms/web1")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn cleartext_password_is_hashed_and_never_echoed_or_logged() {
    let env = ready("web1");
    let secret = "hunter2 is my password";
    let out = env.run(As::Remote(OWNER), &["install", "web1", "--no-start"], format!("{secret}\n").as_bytes());
    out.ok();
    let preseed = String::from_utf8(iso_file(&env.vm_file("web1", "install.qcow2"), "/preseed.cfg")).unwrap();
    let hash = preseed.lines().find_map(|l| l.strip_prefix("d-i passwd/root-password-crypted password ")).unwrap();
    assert!(hash.starts_with("$6$"));
    assert!(sha_crypt::sha512_check(secret, hash).is_ok(), "the hash must verify the password");
    assert!(!preseed.contains(secret));
    let audit = env.audit().join("\n");
    assert!(audit.contains(&format!("principal={OWNER} action=install vm=web1 outcome=ok")), "{audit}");
    for text in [&out.stdout, &out.stderr, &audit] {
        assert!(!text.contains(secret) && !text.contains(hash), "secret leaked: {text}");
    }
    // Nor does it reach any file but the media.
    for (p, (_, _, content)) in env.snapshot() {
        if p != env.vm_file("web1", "install.qcow2") {
            assert!(!String::from_utf8_lossy(&content).contains(hash), "hash in {}", p.display());
        }
    }
}

#[test]
fn started_install_is_followed_to_the_end() {
    let env = ready("web1");
    let j = env.run(As::Remote(OWNER), &["--json", "install", "web1"], PW_HASH.as_bytes()).ok().json();
    assert_eq!(j["state"], "installing");
    assert!(env.xl_running("web1"));
    let calls = fs::read_to_string(env.xl.parent().unwrap().join("calls.log")).unwrap();
    assert!(calls.contains(&format!("create {}", env.vm_file("web1", "domain.cfg").display())), "{calls}");
    // A second install while the guest runs is refused.
    let out = env.run(As::Remote(OWNER), &["--json", "install", "web1"], PW_HASH.as_bytes());
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.json()["error"]["kind"], "busy");

    let s = env.run(As::Remote(COOWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "installing");
    assert!(s["started_at"].is_string());
    assert!(s["elapsed_s"].is_u64());
    // The console log's last line shows up in status.
    fs::write(env.root().join("console/guest-web1.log"), "\u{1b}[1mInstalling the base system\u{1b}[0m\r\n").unwrap();
    let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["console_tail"], "Installing the base system");

    assert_eq!(s["progress"], "installing base system");
    // The installer reboots at the end: on_reboot=destroy makes the domain go away.
    let mut log = fs::OpenOptions::new().append(true).open(env.root().join("console/guest-web1.log")).unwrap();
    std::io::Write::write_all(&mut log, b"[ 1234.5] reboot: Restarting system\r\n").unwrap();
    env.xl_guest_finishes("web1");
    let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "installed");
    assert!(s["finished_at"].is_string());
    assert!(!env.vm_file("web1", "install.qcow2").exists(), "media holding the hash must go");
}

/// An installer stuck at a dialog (here the one the real installer drew
/// when this machine's mirror lacked its udebs) is reported as waiting,
/// not as going on; once it goes past the dialog, it is not.
#[test]
fn installer_waiting_at_a_dialog_is_reported() {
    let env = ready("web1");
    env.run(As::Remote(OWNER), &["install", "web1"], PW_HASH.as_bytes()).ok();
    let log = env.root().join("console/guest-web1.log");
    let stuck = "Checking the Debian archive mirror\u{1b}[H\u{1b}(0lqqqu\u{1b}(B\u{1b}[30m\u{1b}[47m \u{1b}[31m[!!] Download installer components\u{1b}[30m \u{1b}(0tqk\u{1b}[6;3H The installer failed to download a file";
    fs::write(&log, stuck).unwrap();
    let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "installing");
    assert_eq!(s["waiting_dialog"], "Download installer components", "{s}");
    let h = env.run(As::Remote(OWNER), &["status", "web1"], b"");
    h.ok();
    assert!(h.stdout.contains("will not go on by itself"), "{h:?}");
    fs::write(&log, format!("{stuck}\r\nInstalling the base system\r\n")).unwrap();
    let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["waiting_dialog"], serde_json::Value::Null, "{s}");
}

#[test]
fn guest_that_dies_mid_install_is_failed_not_installed() {
    let env = ready("web1");
    env.run(As::Remote(OWNER), &["install", "web1"], PW_HASH.as_bytes()).ok();
    fs::write(env.root().join("console/guest-web1.log"), "Linux version 6.1\r\nInstalling the base system\r\n").unwrap();
    env.xl_guest_finishes("web1");
    let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "failed");
    assert!(s["reason"].as_str().unwrap().contains("installing base system"), "{s}");
    assert!(!env.vm_file("web1", "install.qcow2").exists(), "media holding the hash must go");
}

#[test]
fn failing_or_hanging_xl_leaves_state_failed_and_no_media() {
    for mode in ["fail", "hang-create"] {
        let env = ready("web1");
        if mode == "hang-create" {
            let cfg = fs::read_to_string(&env.config).unwrap().replace("hypervisor_s = 10", "hypervisor_s = 2");
            fs::write(&env.config, cfg).unwrap();
        }
        env.xl_mode(mode);
        let out = env.run(As::Remote(OWNER), &["install", "web1", "--json"], PW_HASH.as_bytes());
        assert_eq!(out.code, 1, "{mode}: {out:?}");
        assert_eq!(out.json()["error"]["kind"], "failed");
        assert!(!env.vm_file("web1", "install.qcow2").exists(), "{mode}: media left behind");
        env.xl_mode("ok");
        let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
        assert_eq!(s["state"], "failed", "{mode}");
        assert!(s["reason"].as_str().unwrap().contains("xl"), "{s}");
        // And a retry works.
        env.run(As::Remote(OWNER), &["install", "web1"], PW_HASH.as_bytes()).ok();
    }
}

#[test]
fn cancel_stops_the_guest_and_removes_media() {
    let env = ready("web1");
    env.run(As::Remote(OWNER), &["install", "web1"], PW_HASH.as_bytes()).ok();
    let j = env.run(As::Remote(OWNER), &["cancel", "web1", "--json"], b"").ok().json();
    assert_eq!(j["state"], "cancelled");
    assert!(!env.xl_running("web1"));
    assert!(!env.vm_file("web1", "install.qcow2").exists());
    let s = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"").ok().json();
    assert_eq!(s["state"], "cancelled");
}

#[test]
fn held_lock_means_busy_at_once_and_nothing_changes() {
    let env = ready("web1");
    env.run(As::Remote(OWNER), &["install", "web1", "--no-start"], PW_HASH.as_bytes()).ok();
    let f = fs::File::open(env.state.join("locks/web1.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
    let before = env.snapshot();
    for args in [&["install", "web1", "--json"][..], &["cancel", "web1", "--json"]] {
        let out = env.run(As::Remote(OWNER), args, PW_HASH.as_bytes());
        assert_eq!(out.code, 5, "{out:?}");
        assert_eq!(out.json()["error"]["kind"], "busy");
    }
    assert_eq!(env.snapshot(), before);
    drop(held);
    env.run(As::Remote(OWNER), &["install", "web1", "--no-start"], PW_HASH.as_bytes()).ok();
}

#[test]
fn missing_volume_is_refused_before_anything_is_written() {
    let env = ready("web1");
    fs::remove_file(env.root().join("web1.img")).unwrap();
    let before = env.snapshot();
    let out = env.run(As::Remote(OWNER), &["install", "web1", "--json"], PW_HASH.as_bytes());
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.json()["error"]["message"].as_str().unwrap().contains("does not exist"));
    assert_eq!(env.snapshot(), before);
    // --no-start does not need the volume yet.
    env.run(As::Remote(OWNER), &["install", "web1", "--no-start"], PW_HASH.as_bytes()).ok();
}

#[test]
fn missing_xorriso_fails_cleanly() {
    let env = Env::with_config_extra("xorriso = \"/nonexistent/xorriso\"");
    let before = env.snapshot();
    let out = env.run(As::Root, &["--json", "image", "import", "x", installer_iso(false).to_str().unwrap(),
        &format!("sha256={}", sha256(&installer_iso(false)))], b"");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.json()["error"]["message"].as_str().unwrap().contains("not installed"));
    assert_eq!(env.snapshot(), before, "partial import left behind");
}

#[test]
fn machine_registry_round_trip_and_conflicts() {
    let env = Env::new();
    env.import("bookworm", false);
    let disk = env.machine("web1", 1, Some("bookworm"));
    let j = env.run(As::Remote(ADMIN), &["machine", "show", "web1", "--json"], b"").ok().json();
    assert_eq!(j["owners"], serde_json::json!([OWNER, COOWNER]));
    assert_eq!(j["network"]["ip"], "192.0.2.11");
    assert_eq!(j["disk"], disk.display().to_string());
    // Same MAC, disk or IP as another machine: refused.
    let before = env.snapshot();
    let out = env.run(As::Remote(ADMIN), &["machine", "add", "web2", &format!("owner={OWNER}"), "ip=192.0.2.99",
        "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=192.0.2.53", "mac=00:16:3e:00:00:01",
        "size=1G"], b"");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("mac"), "{out:?}");
    assert_eq!(env.snapshot(), before);
    // Unknown image: not found.
    let out = env.run(As::Remote(ADMIN), &["machine", "add", "web2", &format!("owner={OWNER}"), "ip=192.0.2.99",
        "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=192.0.2.53", "mac=00:16:3e:00:00:02",
        "size=1G", "image=nosuch"], b"");
    assert_eq!(out.code, 4, "{out:?}");
    let l = env.run(As::Remote(OWNER), &["list", "--json"], b"").ok().json();
    assert_eq!(l["machines"][0]["vm"], "web1");
    assert_eq!(l["machines"].as_array().unwrap().len(), 1);
    let l = env.run(As::Remote(STRANGER), &["list", "--json"], b"").ok().json();
    assert_eq!(l["machines"].as_array().unwrap().len(), 0);
    env.run(As::Remote(ADMIN), &["machine", "remove", "web1"], b"").ok();
    assert_eq!(env.run(As::Remote(ADMIN), &["machine", "show", "web1"], b"").code, 4);
}

#[test]
fn disk_roots_restrict_where_volumes_may_be() {
    let env = Env::new();
    let allowed = env.root().join("vols");
    fs::create_dir(&allowed).unwrap();
    let text = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, text.replacen("\n[mirror]", &format!("disk_roots = [\"{}\"]\n[mirror]", allowed.display()), 1)).unwrap();
    let add = |disk: &str| env.run(As::Root, &["machine", "add", "web1", &format!("owner={OWNER}"), "ip=192.0.2.9",
        "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=192.0.2.53", "mac=00:16:3e:00:00:01",
        &format!("disk={disk}")], b"");
    let outside = env.volume("outside");
    let before = env.snapshot();
    for disk in ["/dev/sda", allowed.to_str().unwrap(), &format!("{}x/a", allowed.display()), "/etc/shadow", outside.to_str().unwrap()] {
        let out = add(disk);
        assert_eq!(out.code, 2, "{disk}: {out:?}");
        assert!(out.stderr.contains("disk"));
    }
    assert_eq!(env.snapshot(), before);
    let inside = allowed.join("web1.img");
    fs::File::create(&inside).unwrap().set_len(64 << 20).unwrap();
    add(inside.to_str().unwrap()).ok();
}
