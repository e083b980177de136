//! Tests of argv as callers give it, through `parse` end to end: every
//! subcommand, the refusals, and that the audit's word list agrees.

use super::words::SUBCOMMANDS;
use super::*;
use crate::registry::VolumeSpec;
use crate::template::BuilderKind;
use crate::types::{Hostname, ImageName, TemplateName, VmName, VolumeSize};
use std::ffi::OsString;

fn p(args: &[&str]) -> Result<Command, UsageError> {
    parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
}

#[test]
fn the_audit_knows_every_subcommand_parse_knows() {
    for w in SUBCOMMANDS {
        let e = p(&[w]);
        assert!(!matches!(&e, Err(UsageError::Usage(m)) if m == "unknown subcommand"), "{w}");
    }
    assert!(matches!(p(&["frobnicate"]), Err(UsageError::Usage(m)) if m.starts_with("unknown subcommand")));
    assert_eq!(action_word(&[OsString::from("reboot"), OsString::from("vm1 x")]), "reboot");
}

#[test]
fn install_parses_with_json_anywhere() {
    let c = p(&["--json", "install", "web1", "hostname=www", "--no-start"]).unwrap();
    assert_eq!(
        c,
        Command::Install {
            vm: VmName::parse("web1").unwrap(),
            hostname: Some(Hostname::parse("www").unwrap()),
            image: None,
            template: None,
            no_start: true,
            no_keys: false
        }
    );
    let c = p(&["install", "web1", "keys=none"]).unwrap();
    assert!(matches!(c, Command::Install { no_keys: true, .. }), "{c:?}");
    assert!(p(&["install", "web1", "keys=all"]).is_err());
    assert!(wants_json(&["status".into(), "x".into(), "--json".into()]));
}

#[test]
fn unknown_repeated_and_path_like_arguments_are_refused() {
    for bad in [
        &["install", "web1", "config=/tmp/x"][..],
        &["install", "web1", "--config=/tmp/x"],
        &["install", "web1", "hostname=a", "hostname=b"],
        &["install", "../etc"],
        &["install", "web1", "image=../../etc"],
        &["install", "web1", "template=../x"],
        &["install", "web1", "template=t", "image=i"],
        &["template", "build", "img", "name=a/b"],
        &["template", "build", "img", "suite=sid"],
        &["template", "build", "img", "builder=installer"],
        &["template", "build", "img", "builder=debootstrap", "machine=vm1"],
        &["template", "build", "img", "machine=vm1"],
        &["template", "build", "img", "builder=mmdebstrap", "machine=vm1"],
        &["template", "build", "img", "builder=installer", "machine=../x"],
        &["templates", "x"],
        &["status"],
        &["status", "web1", "extra"],
        &["start"],
        &["start", "web1", "--force"],
        &["stop", "web1", "--now"],
        &["stop", "web1", "--force", "x"],
        &["reboot", "../web1"],
        &["frobnicate"],
        &[],
        &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
          "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01", "disk=/dev/vg/vm2", "disk=/dev/sda"],
        &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
          "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01", "disk=/dev/vg/vm2", "size=20G"],
        &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
          "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01"],
        &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
          "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01", "size=20"],
        &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
          "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01", "size=1G", "size=2G"],
        &["machine", "remove", "vm2", "--purge"],
        &["machine", "remove", "vm2", "--purge-volume", "--purge-volume"],
        &["machine", "remove", "--purge-volume"],
    ] {
        assert!(p(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn ganeti_os_operations_parse() {
    use crate::ganeti::OsOp;
    assert_eq!(p(&["ganeti", "create"]).unwrap(), Command::Ganeti(OsOp::Create));
    assert_eq!(p(&["ganeti", "verify", "parameters"]).unwrap(), Command::Ganeti(OsOp::Verify));
    for bad in [&["ganeti"][..], &["ganeti", "verify"], &["ganeti", "create", "x"], &["ganeti", "destroy"]] {
        assert!(p(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn power_commands_parse() {
    let vm = VmName::parse("web1").unwrap();
    assert_eq!(p(&["start", "web1", "--json"]).unwrap(), Command::Start { vm: vm.clone() });
    assert_eq!(p(&["stop", "web1"]).unwrap(), Command::Stop { vm: vm.clone(), force: false });
    assert_eq!(p(&["stop", "--force", "web1"]).unwrap(), Command::Stop { vm: vm.clone(), force: true });
    assert_eq!(p(&["stop", "web1", "--force"]).unwrap(), Command::Stop { vm: vm.clone(), force: true });
    assert_eq!(p(&["reboot", "web1"]).unwrap(), Command::Reboot { vm });
}

#[test]
fn machine_add_takes_repeated_owners_and_nameservers() {
    let c = p(&["machine", "add", "vm2", "owner=a@R", "owner=b/admin@R", "ip=10.0.0.2", "netmask=255.255.255.0",
                "gateway=10.0.0.1", "nameserver=10.0.0.1", "nameserver=10.0.0.3", "mac=00:16:3E:00:00:01",
                "size=20G"]).unwrap();
    let Command::MachineAdd(m) = c else { panic!() };
    assert_eq!(m.owners.len(), 2);
    assert_eq!(m.network.nameservers().len(), 2);
    assert_eq!(m.mac.to_string(), "00:16:3e:00:00:01");
    assert_eq!(m.memory_mib.get(), 1024);
    assert_eq!(m.volume, VolumeSpec::Size(VolumeSize::parse("20G").unwrap()));
    assert_eq!(
        p(&["machine", "remove", "vm2", "--purge-volume"]).unwrap(),
        Command::MachineRemove { vm: VmName::parse("vm2").unwrap(), purge_volume: true }
    );
}

#[test]
fn template_build_takes_a_builder_and_its_machine() {
    let c = p(&["template", "build", "img", "name=t", "builder=installer", "machine=vm1"]).unwrap();
    assert_eq!(
        c,
        Command::TemplateBuild {
            from: TemplateFrom::Image(ImageName::parse("img").unwrap()),
            name: Some(TemplateName::parse("t").unwrap()),
            builder: BuilderKind::Installer,
            machine: Some(VmName::parse("vm1").unwrap()),
        }
    );
    let Command::TemplateBuild { builder, machine, .. } = p(&["template", "build", "img"]).unwrap() else { panic!() };
    assert_eq!((builder, machine), (BuilderKind::Mmdebstrap, None));
    // From a suite alone: mmdebstrap only, and only a known suite.
    let Command::TemplateBuild { from, name, .. } = p(&["template", "build", "suite=trixie"]).unwrap() else { panic!() };
    assert_eq!((from, name), (TemplateFrom::Suite(crate::template::Suite::parse("trixie").unwrap()), None));
    assert!(p(&["template", "build", "suite=trixie", "builder=installer", "machine=vm1"]).unwrap_err().to_string().contains("needs an image"));
    let e = p(&["template", "build", "suite=sid\x1b[2J"]).unwrap_err().to_string();
    assert!(e.contains("suite") && !e.contains('\x1b'), "{e}");
}

#[test]
fn value_errors_name_the_field_not_the_value() {
    let e = p(&["install", "web1", "hostname=bad\nd-i preseed/late_command string x"]).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("hostname"), "{msg}");
    assert!(!msg.contains("late_command"), "{msg}");
}

#[test]
fn a_misplaced_password_is_never_echoed() {
    for args in [&["install", "web1", "Summer2024=x!", "template=t"][..], &["install", "web1", "template=t", "Summer2024=x!"], &["status", "web1", "Summer2024=x"]] {
        let e = p(args).unwrap_err().to_string();
        assert!(!e.contains("Summer2024"), "{args:?}: {e}");
        if args[0] == "install" {
            let at = if args[2].starts_with("Summer") { "word 1" } else { "word 2" };
            assert!(e.contains(at), "{args:?}: {e}");
        }
    }
    let e = p(&["install", "web1", "hunter2"]).unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
}
