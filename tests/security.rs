//! Who may do what, and hostile input: every refused request exits with
//! the documented code and leaves the state dir byte-for-byte unchanged.

mod common;

use common::*;

const PW: &[u8] = b"s3cret-password\n";

fn ready() -> Env {
    let env = Env::new();
    env.import("bookworm", false);
    env.machine("web1", 1, Some("bookworm"));
    env
}

#[test]
fn authorization_matrix() {
    let env = ready();
    // (who, may manage web1, is admin, is local root)
    let callers: [(As, bool, bool, bool); 6] = [
        (As::Remote(OWNER), true, false, false),
        (As::Remote(COOWNER), true, false, false),
        (As::Remote(ADMIN), true, true, false),
        (As::Remote(STRANGER), false, false, false),
        (As::Root, true, true, true),
        (As::Nobody, false, false, false),
    ];
    let iso = installer_iso(false);
    let sum = format!("sha256={}", sha256(&iso));
    for (who, manage, admin, local) in callers {
        let expect = |allowed: bool| if allowed { 0 } else { 3 };
        let before = env.snapshot();
        for args in [&["status", "web1", "--json"][..], &["machine", "show", "web1", "--json"]] {
            let out = env.run(who, args, b"");
            let allowed = if args[0] == "machine" { admin } else { manage };
            assert_eq!(out.code, expect(allowed), "{who:?} {args:?}: {out:?}");
            if !allowed {
                assert_eq!(out.json()["error"]["kind"], "denied");
            }
        }
        // Read-only requests never change anything, allowed or not.
        assert_eq!(env.snapshot(), before, "{who:?}");

        let out = env.run(who, &["install", "web1", "--no-start", "--json"], PW);
        assert_eq!(out.code, expect(manage), "{who:?} install: {out:?}");
        if !manage {
            assert_eq!(env.snapshot(), before, "{who:?}: refused install changed the state dir");
        }
        let out = env.run(who, &["cancel", "web1", "--json"], b"");
        assert_eq!(out.code, expect(manage), "{who:?} cancel: {out:?}");

        let before = env.snapshot();
        let out = env.run(who, &["image", "import", "other", iso.to_str().unwrap(), &sum, "--json"], b"");
        assert_eq!(out.code, expect(local), "{who:?} import: {out:?}");
        if local {
            env.run(As::Root, &["--json", "machine", "show", "web1"], b"").ok();
        } else {
            assert_eq!(env.snapshot(), before, "{who:?}: refused import changed the state dir");
        }
        // Listing is for anyone authenticated, and shows only one's own.
        let out = env.run(who, &["list", "--json"], b"");
        if matches!(who, As::Nobody) {
            assert_eq!(out.code, 3);
        } else {
            let n = out.ok().json()["machines"].as_array().unwrap().len();
            assert_eq!(n, usize::from(manage), "{who:?}");
        }
        // Help is for anyone.
        env.run(who, &["help"], b"").ok();
        // Clean up the imported image for the next caller.
        if local {
            guest_installer::fsutil::remove_tree(&env.state.join("images/other")).unwrap();
        }
    }
}

#[test]
fn unknown_machine_looks_denied_to_non_admins_and_missing_to_admins() {
    let env = ready();
    let out = env.run(As::Remote(STRANGER), &["status", "nosuch", "--json"], b"");
    assert_eq!(out.code, 3);
    let out = env.run(As::Remote(ADMIN), &["status", "nosuch", "--json"], b"");
    assert_eq!(out.code, 4);
    assert_eq!(out.json()["error"]["kind"], "not_found");
    let out = env.run(As::Remote(OWNER), &["install", "web1", "image=nosuch", "--no-start", "--json"], PW);
    assert_eq!(out.code, 4, "{out:?}");
}

#[test]
fn malformed_remote_user_is_denied() {
    let env = ready();
    let before = env.snapshot();
    for p in ["", "alice@", "@EXAMPLE.ORG", "a b@EXAMPLE.ORG", "a@b@EXAMPLE.ORG", "bob@EXAMPLE.ORG\n", "bob"] {
        let out = env.run(As::Remote(p), &["status", "web1", "--json"], b"");
        assert_eq!(out.code, 3, "{p:?}: {out:?}");
        assert_eq!(out.json()["error"]["kind"], "denied");
    }
    assert_eq!(env.snapshot(), before);
}

/// Values that must never get through any field.
fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        // (No NUL: neither exec nor remctld passes one in an argument.)
        "", "\n", "a\nb", "a\rb", "a\tb", "a\\b", "a\"b", "a'b", "a$b", "a`b", "a b", "a;b", "\u{1b}[2J",
        "\u{7f}", "é", "-rf", "--config=/etc/shadow", "..", "../../etc/passwd", "a/b",
        "x\nd-i preseed/late_command string reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a".repeat(300));
    v.push("a".repeat(5000));
    v
}

#[test]
fn hostile_values_in_every_field_are_refused_without_changes() {
    let env = ready();
    let before = env.snapshot();
    let good = [
        ("owner", OWNER.to_owned()),
        ("ip", "192.0.2.50".into()),
        ("netmask", "255.255.255.0".into()),
        ("gateway", "192.0.2.1".into()),
        ("nameserver", "192.0.2.53".into()),
        ("mac", "00:16:3e:00:00:50".into()),
        ("disk", "/dev/xenvg/web2".into()),
        ("memory", "512".into()),
        ("vcpus", "1".into()),
        ("image", "bookworm".into()),
    ];
    let field_specific: &[(&str, &[&str])] = &[
        ("ip", &["192.0.2.010", "256.0.0.1", "192.0.2", "2001:db8::1", "192.0.2.0", "192.0.2.255", "0x7f.0.0.1"]),
        ("netmask", &["255.0.255.0", "255.255.255.255", "0.0.0.0", "24", "/24"]),
        ("gateway", &["198.51.100.1", "192.0.2.50", "192.0.2.255"]),
        ("nameserver", &["192.0.2.053", "::1"]),
        ("mac", &["00:16:3e:00:00", "01:16:3e:00:00:01", "00-16-3e-00-00-01", "0:16:3e:0:0:1", "00:16:3e:00:00:01:02", "gg:16:3e:00:00:01"]),
        ("owner", &["alice@", "@EXAMPLE.ORG", "a b@R", "a@b@R", "alice"]),
        ("disk", &["dev/xenvg/x", "/dev/../etc/shadow", "/dev/./sda", "/dev//sda", "/dev/sda/"]),
        ("memory", &["0", "-1", "100", "0512", "1e3", "99999999999"]),
        ("vcpus", &["0", "129", "01"]),
    ];
    let run_add = |field: &str, value: &str| {
        let mut args = vec!["--json".to_owned(), "machine".into(), "add".into(), "web2".into()];
        for (k, v) in &good {
            args.push(format!("{k}={}", if *k == field { value } else { v }));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run(As::Remote(ADMIN), &a, b"")
    };
    let mut cases = 0;
    for (field, _) in &good {
        let specific = field_specific.iter().find(|(f, _)| f == field).map(|(_, v)| v.to_vec()).unwrap_or_default();
        for value in hostile().iter().map(String::as_str).chain(specific) {
            let out = run_add(field, value);
            let want = if *field == "image" && crate_image_name_ok(value) { 4 } else { 2 };
            assert_eq!(out.code, want, "{field}={value:?}: {out:?}");
            let msg = out.json()["error"]["message"].as_str().unwrap().to_owned();
            if want == 2 && value.len() < 1000 {
                assert!(msg.contains(field) || msg.contains("argument"), "message should name {field}: {msg}");
            }
            assert!(!msg.contains('\n') && !msg.contains("late_command"), "message echoes input: {msg:?}");
            cases += 1;
        }
    }
    // The VM name itself, install's keys, and unknown or path-like keys.
    for value in hostile() {
        for args in [
            vec!["install".to_owned(), value.clone(), "--no-start".into()],
            vec!["install".into(), "web1".into(), format!("hostname={value}"), "--no-start".into()],
            vec!["install".into(), "web1".into(), format!("image={value}"), "--no-start".into()],
            vec!["status".into(), value.clone()],
            vec!["cancel".into(), value.clone()],
        ] {
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            a.push("--json");
            let out = env.run(As::Remote(OWNER), &a, PW);
            assert_eq!(out.code, 2, "{a:?}: {out:?}");
            assert_eq!(out.json()["error"]["kind"], "invalid");
            cases += 1;
        }
    }
    for args in [
        &["install", "web1", "config=/tmp/evil.toml", "--no-start"][..],
        &["install", "web1", "--config", "/tmp/evil.toml"],
        &["install", "web1", "preseed=/tmp/x"],
        &["install", "web1", "xl=/bin/sh"],
        &["install", "web1", "hostname=a", "hostname=b"],
        &["install", "web1", "disk=/dev/sda"],
        &["status", "web1", "extra"],
        &["machine", "frob"],
        &["nosuchcommand"],
    ] {
        let out = env.run(As::Remote(OWNER), args, PW);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        cases += 1;
    }
    // Bad passwords on stdin.
    for pw in [&b""[..], b"\n", b"a\x00b", b"two\nlines", b"$6$malformed$hash", b"\x1b[31m", &vec![b'a'; 2000]] {
        let out = env.run(As::Remote(OWNER), &["install", "web1", "--no-start", "--json"], pw);
        assert_eq!(out.code, 2, "{pw:?}: {out:?}");
        assert!(out.json()["error"]["message"].as_str().unwrap().contains("password"));
        cases += 1;
    }
    assert_eq!(env.snapshot(), before, "a refused request changed the state dir");
    assert!(cases > 300, "{cases}");
}

fn crate_image_name_ok(s: &str) -> bool {
    guest_installer::types::ImageName::parse(s).is_ok()
}

#[test]
fn every_failure_is_one_json_document_with_a_documented_kind() {
    let env = ready();
    for (args, code, kind) in [
        (&["nosuch"][..], 2, "invalid"),
        (&["status", "nosuch"], 4, "not_found"),
        (&["machine", "show", "web1"], 0, ""),
    ] {
        let mut a = args.to_vec();
        a.insert(0, "--json");
        let out = env.run(As::Remote(ADMIN), &a, b"");
        assert_eq!(out.code, code, "{out:?}");
        let j = out.json();
        assert_eq!(j["ok"], code == 0);
        if code != 0 {
            assert_eq!(j["error"]["kind"], kind);
            assert!(!j["error"]["message"].as_str().unwrap().is_empty());
        }
        assert_eq!(out.stdout.trim().lines().count(), 1, "exactly one document");
    }
}

#[test]
fn audit_records_every_request_and_never_a_secret() {
    let env = ready();
    env.audit();
    env.run(As::Remote(STRANGER), &["status", "web1"], b"");
    env.run(As::Remote(OWNER), &["install", "web1", "--no-start"], PW).ok();
    let log = env.audit();
    assert!(log.iter().any(|l| l.contains(&format!("principal={STRANGER} action=status vm=web1 outcome=denied"))), "{log:?}");
    assert!(log.iter().any(|l| l.contains(&format!("principal={OWNER} action=install vm=web1 outcome=ok"))), "{log:?}");
    assert!(log.iter().all(|l| !l.contains("s3cret") && !l.contains("$6$")), "{log:?}");
    // RFC 3164 over the socket, facility authpriv (10): <85> is authpriv.notice, <86> authpriv.info.
    assert!(log.iter().all(|l| l.starts_with("<85>") || l.starts_with("<86>")), "{log:?}");
}

#[test]
fn corrupt_registry_file_is_named_and_not_overwritten() {
    let env = ready();
    let f = env.state.join("machines/web1.json");
    std::fs::write(&f, b"{ not json").unwrap();
    let before = env.snapshot();
    for args in [&["status", "web1", "--json"][..], &["list", "--json"], &["machine", "show", "web1", "--json"]] {
        let out = env.run(As::Remote(ADMIN), args, b"");
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.json()["error"]["message"].as_str().unwrap().contains("web1.json"));
    }
    assert_eq!(env.snapshot(), before);
}

#[test]
fn unsafe_state_dir_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = ready();
    let check = |what: &str| {
        let out = env.run(As::Remote(OWNER), &["status", "web1", "--json"], b"");
        assert_eq!(out.code, 1, "{what}: {out:?}");
        assert!(out.json()["error"]["message"].as_str().unwrap().contains("unsafe"), "{what}: {out:?}");
    };
    std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o777)).unwrap();
    check("world-writable state dir");
    std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    env.run(As::Remote(OWNER), &["status", "web1"], b"").ok();

    // A symlink where the registry should be.
    let machines = env.state.join("machines");
    let elsewhere = env.root().join("machines-elsewhere");
    std::fs::rename(&machines, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &machines).unwrap();
    check("symlinked machines/");
    std::fs::remove_file(&machines).unwrap();
    std::fs::rename(&elsewhere, &machines).unwrap();

    // Owned by someone else.
    nix::unistd::chown(&env.state, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    check("state dir owned by nobody");
    nix::unistd::chown(&env.state, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    env.run(As::Remote(OWNER), &["status", "web1"], b"").ok();
}

/// Random argv built from the words the parser knows and hostile ones:
/// every run exits with a documented status, and with --json prints
/// exactly one JSON document.
#[test]
fn no_input_gives_an_undocumented_exit_or_broken_json() {
    let env = ready();
    let words = [
        "install", "status", "cancel", "list", "images", "help", "machine", "add", "remove", "show", "image", "import",
        "web1", "nosuch", "--no-start", "--json", "hostname=www", "image=bookworm", "image=", "=", "owner=bob@EXAMPLE.ORG",
        "ip=192.0.2.9", "mac=00:16:3e:00:00:09", "disk=/dev/vg/x", "sha256=00", "/etc/shadow", "", "\n", "é", "-", "--",
        "template=t", "templates", "memory=99999999999999999999", "a=b=c",
    ];
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for i in 0..200 {
        let n = next(6);
        let mut args: Vec<&str> = (0..n).map(|_| words[next(words.len())]).collect();
        let json = i % 2 == 0;
        if json {
            args.insert(next(args.len() + 1), "--json");
        }
        let who = [As::Remote(OWNER), As::Remote(ADMIN), As::Remote(STRANGER), As::Root][next(4)];
        let out = env.run(who, &args, b"pw\n");
        assert!((0..=5).contains(&out.code), "{args:?}: {out:?}");
        if json {
            let j = out.json();
            assert_eq!(j["ok"], out.code == 0, "{args:?}: {out:?}");
        }
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out:?}");
    }
}

/// A message suggests a command in the form the caller can run: remote
/// callers cannot run guest-installer on the host, so they are told the
/// remctl form.
#[test]
fn messages_name_the_command_form_the_caller_can_run() {
    let env = ready();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let args = ["machine", "add", "web2", "owner=bob@EXAMPLE.ORG", "ip=192.0.2.99", "netmask=255.255.255.0", "gateway=192.0.2.1",
        "nameserver=192.0.2.53", "mac=00:16:3e:00:00:99", "size=1G", "template=nosuch", "--json"];
    let remote = env.run(As::Remote(ADMIN), &args, b"");
    let msg = remote.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains(&format!("`remctl {host} guest templates`")) && !msg.contains("guest-installer templates"), "{msg}");
    let usage = env.run(As::Remote(OWNER), &["status"], b"");
    assert!(usage.stderr.contains(&format!("`remctl {host} guest help`")), "{usage:?}");
    let local = env.run(As::Root, &args, b"");
    assert!(local.json()["error"]["message"].as_str().unwrap().contains("`guest-installer templates`"), "{local:?}");
}

/// Every network `machine add` refuses (a family mixed up, an IPv6
/// gateway off-link, a prefix past /128, an incoherent combination, an
/// address another machine has): exit 2, a message naming the key and
/// echoing nothing, and the state dir unchanged.
#[test]
fn refused_networks_change_nothing() {
    let env = Env::new();
    // A dual-stack machine whose addresses the others may not take.
    let vol = env.volume("net1");
    env.run(As::Root, &["machine", "add", "net1", &format!("owner={OWNER}"), "ip=192.0.2.21", "netmask=255.255.255.0", "gateway=192.0.2.1",
        "ip6=2001:db8::21/64", "gateway6=fe80::1", "nameserver=2001:db8::53", "mac=00:16:3e:00:00:21", &format!("disk={}", vol.display())], b"").ok();
    let vol = env.volume("net2");
    let base = [format!("owner={OWNER}"), "mac=00:16:3e:00:00:22".to_owned(), format!("disk={}", vol.display())];
    let cases: &[(&[&str], &str)] = &[
        (&["ip6=2001:db8::22/129", "gateway6=fe80::1", "nameserver=2001:db8::53"], "ip6"),
        (&["ip6=2001:db8::22/64", "gateway6=2001:db9::1", "nameserver=2001:db8::53"], "gateway6"),
        (&["ip6=2001:db8::22/64", "gateway6=192.0.2.1", "nameserver=2001:db8::53"], "gateway6"),
        (&["ip6=192.0.2.22/24", "gateway6=fe80::1", "nameserver=2001:db8::53"], "ip6"),
        (&["ip6=fe80::22/64", "gateway6=fe80::1", "nameserver=2001:db8::53"], "ip6"),
        (&["ip=2001:db8::22", "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=192.0.2.53"], "ip"),
        (&["ip=192.0.2.22", "netmask=255.255.255.0", "gateway=fe80::1", "nameserver=192.0.2.53"], "gateway"),
        (&["ip=192.0.2.22", "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=2001:db8::53"], "nameserver"),
        (&["ip6=2001:db8::22/64", "gateway6=fe80::1", "nameserver=192.0.2.53"], "nameserver"),
        (&["ip6=2001:db8::22/64", "nameserver=2001:db8::53"], "gateway6"),
        (&["gateway6=fe80::1", "nameserver=2001:db8::53"], "gateway6"),
        (&["gateway=192.0.2.1", "nameserver=192.0.2.53"], "gateway"),
        (&["ip=dhcp", "netmask=255.255.255.0"], "netmask"),
        (&["ip=dhcp", "ip6=2001:db8::22/64", "gateway6=fe80::1"], "ip6"),
        (&["ip=dhcp", "nameserver=192.0.2.53"], "nameserver"),
        (&["nameserver=192.0.2.53"], "ip"),
        (&["ip6=2001:db8::21/64", "gateway6=fe80::1", "nameserver=2001:db8::53"], "ip6"),
        (&["ip6=2001:db8:0::0021/64", "gateway6=fe80::1", "nameserver=2001:db8::53"], "ip6"),
        (&["ip=192.0.2.21", "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=192.0.2.53"], "ip"),
    ];
    let before = env.snapshot();
    for (net, key) in cases {
        let mut args = vec!["machine", "add", "net2", "--json"];
        args.extend(base.iter().map(String::as_str));
        args.extend(net.iter());
        let o = env.run(As::Root, &args, b"");
        assert_eq!(o.code, 2, "{net:?}: {o:?}");
        let msg = o.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.starts_with(&format!("invalid {key}")), "{net:?}: the message should name {key}: {msg}");
        // (Addresses only: `dhcp` is a word the messages use.)
        let echoed = net.iter().map(|w| w.split_once('=').unwrap().1).filter(|v| *v != "dhcp").find(|v| msg.contains(v));
        assert!(echoed.is_none(), "{net:?}: the message echoes {echoed:?}: {msg}");
        assert_same_tree(&before, &env.snapshot(), "a refused machine add changed the state dir");
    }
    // The same words, each alone right, register (the test can fail).
    let mut args = vec!["machine", "add", "net2", "--json"];
    args.extend(base.iter().map(String::as_str));
    args.extend(["ip6=2001:db8::22/64", "gateway6=fe80::1", "nameserver=2001:db8::53"]);
    env.run(As::Root, &args, b"").ok();
}
