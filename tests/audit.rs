//! Every request leaves an audit record: refusals before the config is
//! read too (on the default syslog socket when it cannot be read), and a
//! request that changes anything is recorded before it acts and again
//! with its outcome, so a killed one still leaves a trace. Never a secret.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PASSWORD: &str = "Tr0ub4dor&3-audit";

fn records_of<'a>(log: &'a [String], action: &str) -> Vec<&'a String> {
    log.iter().filter(|l| l.contains(&format!(" action={action} "))).collect()
}

#[test]
fn refusals_before_the_config_is_used_are_recorded() {
    let env = Env::new();
    env.audit();
    // A usage error, from a known caller.
    assert_eq!(env.run(As::Remote(OWNER), &["install", "web1", "colour=blue"], b"").code, 2);
    // A REMOTE_USER that is no principal: its text is never logged.
    assert_eq!(env.run(As::Remote("evil user\nprincipal=root@X"), &["list"], b"").code, 3);
    // A local user who is not root (the socket must let them send).
    fs::set_permissions(env.root().join("syslog.sock"), fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(env.run(As::Nobody, &["machine", "show", "web1"], b"").code, 3);
    // An unknown subcommand is not echoed either.
    assert_eq!(env.run(As::Remote(OWNER), &["rm-rf-everything"], b"").code, 2);
    // Nor a password put where a key=value word goes.
    let out = env.run(As::Remote(OWNER), &["install", "web1", "Summer2024=x!", "template=t"], b"");
    assert_eq!(out.code, 2);
    assert!(!out.stderr.contains("Summer2024") && out.stderr.contains("word 1"), "{out:?}");
    let log = env.audit();
    let expect = [
        format!("principal={OWNER} action=install vm=- outcome=invalid"),
        "principal=(invalid-REMOTE_USER) action=list vm=- outcome=denied".to_owned(),
        "principal=(local-uid-65534) action=machine-show vm=web1 outcome=denied".to_owned(),
        format!("principal={OWNER} action=unknown vm=- outcome=invalid"),
        format!("principal={OWNER} action=install vm=- outcome=invalid"),
    ];
    for e in &expect {
        assert!(log.iter().any(|l| l.contains(e.as_str())), "no record {e:?} in {log:#?}");
    }
    assert_eq!(log.len(), expect.len(), "{log:#?}");
    assert!(log.iter().all(|l| !l.contains("evil") && !l.contains("rm-rf") && !l.contains("Summer2024")), "{log:#?}");
}

/// A change is recorded when it starts and when it ends; a request killed
/// in between leaves its start. A read-only request has one record.
#[test]
fn changes_are_recorded_before_and_after_and_a_killed_one_leaves_its_start() {
    let env = Env::new();
    env.import("bookworm", false);
    env.audit();
    env.run(As::Remote(ADMIN), &["machine", "add", "web1", &format!("owner={OWNER}"), "ip=192.0.2.9", "netmask=255.255.255.0",
        "gateway=192.0.2.1", "nameserver=192.0.2.53", "mac=00:16:3e:00:00:09", "size=1G", "image=bookworm"], b"").ok();
    env.run(As::Remote(OWNER), &["status", "web1"], b"").ok();
    let log = env.audit();
    let adds = records_of(&log, "machine-add");
    assert_eq!(adds.len(), 2, "{log:#?}");
    assert!(adds[0].contains(&format!("principal={ADMIN} action=machine-add vm=web1 outcome=started")), "{adds:#?}");
    assert!(adds[1].contains(&format!("principal={ADMIN} action=machine-add vm=web1 outcome=ok")), "{adds:#?}");
    assert_eq!(records_of(&log, "status").len(), 1, "{log:#?}");

    // `xl create` hangs; the request is killed while it waits.
    env.xl_mode("hang");
    kill_after(&env, &["install", "web1"], format!("{PASSWORD}\n").as_bytes(), Duration::from_secs(3));
    let log = env.audit();
    let installs = records_of(&log, "install");
    assert_eq!(installs.len(), 1, "{log:#?}");
    // (kill_after runs it as root on the host.)
    assert!(installs[0].contains("principal=root action=install vm=web1 outcome=started"), "{log:#?}");
    assert!(log.iter().all(|l| !l.contains(PASSWORD) && !l.contains("$6$")), "{log:#?}");

    // A refused change: started, then its refusal, and never the password.
    env.xl_mode("ok");
    let o = env.run(As::Remote(STRANGER), &["install", "web1"], format!("{PASSWORD}\n").as_bytes());
    assert_eq!(o.code, 3);
    let log = env.audit();
    let installs = records_of(&log, "install");
    assert_eq!(installs.len(), 2, "{log:#?}");
    assert!(installs[0].contains("outcome=started") && installs[1].contains("outcome=denied"), "{log:#?}");
    assert!(log.iter().all(|l| !l.contains(PASSWORD)), "{log:#?}");
}

/// Runs the program in a mount namespace of its own where `/dev/log` is
/// the test's socket (the host may have no syslog at all), with the given
/// config path, as OWNER.
fn run_with_dev_log(sock: &Path, config: &Path, args: &[&str]) -> Out {
    let script = "mount -t tmpfs -o size=64k,mode=0755 gi-dev /dev && : > /dev/log && mount --bind \"$1\" /dev/log && shift && exec \"$@\"";
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh"])
        .arg(sock)
        .arg(bin())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("GUEST_INSTALLER_CONFIG", config)
        .env("REMOTE_USER", OWNER)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Out::from_output(o).of_request(args)
}

/// With no config to say where the audit socket is (missing, unparsable,
/// untrusted), the refusal goes to the default socket, /dev/log.
#[test]
fn a_config_that_cannot_be_read_is_recorded_on_dev_log() {
    let d = tempfile::tempdir().unwrap();
    let sock_path = d.path().join("devlog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let broken = d.path().join("broken.toml");
    fs::write(&broken, "state_dir = \n").unwrap();
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o644)).unwrap();
    let writable = d.path().join("writable.toml");
    fs::copy(Env::new().config, &writable).unwrap();
    fs::set_permissions(&writable, fs::Permissions::from_mode(0o666)).unwrap();
    for (config, says) in [(d.path().join("missing.toml"), "cannot read config"), (broken, "is invalid"), (writable, "not trusted")] {
        let o = run_with_dev_log(&sock_path, &config, &["status", "web1", "--json"]);
        assert_eq!(o.code, 1, "{config:?}: {o:?}");
        assert!(o.json()["error"]["message"].as_str().unwrap().contains(says), "{o:?}");
        let mut buf = [0u8; 8192];
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("{config:?}: no record on /dev/log: {e}; {o:?}"));
        let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(rec.contains(&format!("principal={OWNER} action=status vm=web1 outcome=failed")), "{rec}");
        assert!(rec.contains(says), "{rec}");
    }
}
