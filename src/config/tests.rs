//! Tests of the whole config as a file would give it: defaults, value
//! checks and refusals across every section.

use super::*;

const MIN: &str = r#"
state_dir = "/var/lib/guest-installer"
preseed_template = "/etc/guest-installer/preseed.cfg"
admins = ["alice/admin@EXAMPLE.ORG"]
domain = "example.org"
[mirror]
host = "deb.debian.org"
directory = "/debian"
[hypervisor]
driver = "xl"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = Config::parse(MIN).unwrap();
    assert_eq!(c.hypervisor.driver, Driver::Xl);
    assert_eq!(c.hypervisor.xl.path(), Path::new("/usr/sbin/xl"));
    assert_eq!(c.timeouts.hypervisor_s, 60);
    assert_eq!(c.hypervisor.qemu_user.as_str(), "guest-installer-qemu");
    assert_eq!(c.hypervisor.console_log_max_mib.bytes(), 16 << 20);
    // Xen's device model never runs as root unless the admin says so.
    assert_eq!(c.hypervisor.device_model_user.as_str(), "xen-qemuuser-shared");
    assert!(!c.hypervisor.device_model_root);
    assert_eq!(c.console.account.as_str(), "guest");
    assert_eq!(c.console.socket.path(), Path::new("/run/guest-installer/console.sock"));
}

#[test]
fn console_sockets_fit_a_unix_socket_path() {
    let with = |path: &str| Config::parse(&format!("{MIN}[console]\nsocket = \"{path}\"\n"));
    assert!(with("/run/x.sock").is_ok());
    assert!(with(&format!("/{}", "a".repeat(106))).is_ok());
    for bad in [format!("/{}", "a".repeat(107)), "run/x.sock".into(), "/run/../x.sock".into(), "/run/x y.sock".into()] {
        assert!(with(&bad).is_err(), "{bad}");
    }
    assert!(Config::parse(&format!("{MIN}[console]\naccount = \"Guest\"\n")).is_err());
}

#[test]
fn device_model_users_and_log_caps_are_checked() {
    let with = |extra: &str| Config::parse(&format!("{MIN}{extra}\n"));
    let c = with("device_model_user = \"xen-qemuuser-range-base\"\nconsole_log_max_mib = 1").unwrap();
    assert_eq!(c.hypervisor.device_model_user.as_str(), "xen-qemuuser-range-base");
    assert_eq!(c.hypervisor.console_log_max_mib.bytes(), 1 << 20);
    for bad in [
        "device_model_user = \"root\\\"\"",
        "device_model_user = \"\"",
        "device_model_user = \"Xen\"",
        "qemu_user = \"a b\"",
        "console_log_max_mib = 0",
        "console_log_max_mib = 5000",
    ] {
        assert!(with(bad).is_err(), "{bad}");
    }
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    assert!(Config::parse(&format!("{MIN}\nbogus = 1\n")).is_err());
    assert!(Config::parse(&MIN.replace("/debian", "/debian\\\"\\n")).is_err());
    assert!(Config::parse(&MIN.replace("\"xl\"", "\"kvm\"")).is_err());
    assert!(Config::parse(&MIN.replace("alice/admin@EXAMPLE.ORG", "alice@")).is_err());
    assert!(Config::parse(&MIN.replace("/var/lib/guest-installer", "var/lib")).is_err());
}

/// The man page is the reference for every key: each key the parser
/// knows (as its refusal of an unknown key lists them, section by
/// section) is named there.
#[test]
fn every_key_is_in_the_man_page() {
    let man = include_str!("../../doc/guest-installer.8").replace("\\_", "_");
    let top = MIN.replace("[mirror]", "zz_unknown = 1\n[mirror]");
    let mut sections = vec![top];
    for section in ["[mirror]", "[hypervisor]"] {
        sections.push(MIN.replace(section, &format!("{section}\nzz_unknown = 1")));
    }
    for section in ["timeouts", "audit", "console", "cluster", "volumes]\nkind = \"file\"\ndir = \"/srv/v\"", "volumes]\nkind = \"lvm\"\nvg = \"xenvg\""] {
        sections.push(format!("{MIN}[{section}]\nzz_unknown = 1\n"));
    }
    let mut seen = 0;
    for text in sections {
        let err = Config::parse(&text).unwrap_err().to_string();
        let expected = err.split("expected ").nth(1).unwrap_or_else(|| panic!("no key list in: {err}"));
        let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(!keys.is_empty(), "{err}");
        for key in keys {
            assert!(man.contains(key), "config key {key} is not in doc/guest-installer.8");
            seen += 1;
        }
    }
    assert!(seen > 30, "only {seen} keys found");
}

#[test]
fn qemu_uid_ranges_are_checked() {
    let with = |v: &str| Config::parse(&format!("{MIN}qemu_uids = {v}\n"));
    let c = Config::parse(MIN).unwrap();
    assert_eq!((c.hypervisor.qemu_uids.base, c.hypervisor.qemu_uids.count), (1_879_048_192, 4096));
    let c = with("{ base = 200000, count = 10 }").unwrap();
    assert_eq!((c.hypervisor.qemu_uids.base, c.hypervisor.qemu_uids.count), (200_000, 10));
    for bad in ["{ base = 1000 }", "{ base = 200000, count = 0 }", "{ base = 2147480000, count = 4096 }", "{ base = 200000, extra = 1 }"] {
        assert!(with(bad).is_err(), "{bad}");
    }
}
