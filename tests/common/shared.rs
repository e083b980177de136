//! What the tests and the benchmarks both need to drive the binary (the
//! benchmarks include this file): a config for the xl driver and the words
//! of a `machine add`.

use std::path::Path;

/// The parts of a test or benchmark config that differ between them.
pub struct XlConfig<'a> {
    pub state: &'a Path,
    pub preseed: &'a Path,
    pub admin: &'a str,
    /// The mirror's host and directory.
    pub mirror: (&'a str, &'a str),
    pub xl: &'a Path,
    pub console: &'a Path,
    pub sock: &'a Path,
    pub tool_s: u32,
    pub hypervisor_s: u32,
    /// Lines after the top-level keys (before `[mirror]`).
    pub extra: &'a str,
    /// Sections after `[audit]`.
    pub sections: &'a str,
}

pub fn xl_config(c: &XlConfig) -> String {
    format!(
        r#"state_dir = "{state}"
preseed_template = "{preseed}"
admins = ["{admin}"]
domain = "example.org"
{extra}
[mirror]
host = "{mirror_host}"
directory = "{mirror_dir}"

[hypervisor]
driver = "xl"
xl = "{xl}"
bridge = "xenbr0"
console_dir = "{console}"

[timeouts]
tool_s = {tool_s}
hypervisor_s = {hypervisor_s}

[audit]
syslog_socket = "{sock}"
{sections}"#,
        state = c.state.display(),
        preseed = c.preseed.display(),
        admin = c.admin,
        extra = c.extra,
        mirror_host = c.mirror.0,
        mirror_dir = c.mirror.1,
        xl = c.xl.display(),
        console = c.console.display(),
        tool_s = c.tool_s,
        hypervisor_s = c.hypervisor_s,
        sock = c.sock.display(),
        sections = c.sections,
    )
}

/// `machine add VM` words for machine number `n` (its address, MAC) owned
/// by `owner`, with `volume` (`size=` or `disk=`), asking for JSON.
pub fn machine_add(owner: &str, vm: &str, n: u8, volume: &str) -> Vec<String> {
    [
        "machine".to_owned(),
        "add".into(),
        vm.into(),
        format!("owner={owner}"),
        format!("ip=192.0.2.{}", 10 + n),
        "netmask=255.255.255.0".into(),
        "gateway=192.0.2.1".into(),
        "nameserver=192.0.2.53".into(),
        format!("mac=00:16:3e:00:01:{n:02x}"),
        volume.into(),
        "--json".into(),
    ]
    .into()
}
