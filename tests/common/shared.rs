//! What the tests and the benchmarks both need to drive the binary (the
//! benchmarks include this file): a config for the xl driver, the words
//! of a `machine add`, and the qemu driver's recorded command line made
//! runnable by hand.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The Debian archive the host's own apt sources use (scripts/host-mirror),
/// as the config's mirror host and directory: the tests and benchmarks
/// name no archive host of their own.
pub fn host_mirror() -> &'static (String, String) {
    static M: OnceLock<(String, String)> = OnceLock::new();
    M.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/host-mirror");
        let out = Command::new(&script).output().unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(out.status.success(), "scripts/host-mirror: {}", String::from_utf8_lossy(&out.stderr));
        let uri = String::from_utf8(out.stdout).expect("a URI");
        let rest = uri.trim().split_once("://").expect("a URI").1;
        let (host, dir) = rest.split_once('/').unwrap_or((rest, ""));
        (host.to_owned(), format!("/{}", dir.trim_end_matches('/')))
    })
}

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

/// The file the qemu driver hands qemu at descriptor `fd`, from the record
/// in domain.cfg (`# FD: PATH` lines).
pub fn qemu_fd_file(domain_cfg: &str, fd: u32) -> Option<String> {
    domain_cfg.lines().find_map(|l| l.strip_prefix(&format!("# {fd}: ")).map(str::to_owned))
}

/// The recorded qemu command line made runnable by hand, as root, for a
/// test that boots what the driver would have (after tampering with it):
/// each descriptor back to the file it stands for, the console to
/// `console.log` and a pidfile in `vm_dir`, daemonized. Returns the
/// program and its arguments.
pub fn qemu_by_hand(domain_cfg: &str, vm_dir: &Path) -> (String, Vec<String>) {
    let mut lines = domain_cfg.lines().filter(|l| !l.starts_with('#'));
    let program = lines.next().unwrap().to_owned();
    let fd_path = |s: &str| -> String {
        let mut out = s.to_owned();
        for prefix in ["/dev/fdset/", "/proc/self/fd/"] {
            while let Some(at) = out.find(prefix) {
                let digits: String = out[at + prefix.len()..].chars().take_while(char::is_ascii_digit).collect();
                let file = qemu_fd_file(domain_cfg, digits.parse().unwrap()).unwrap_or_else(|| panic!("fd {digits} not recorded"));
                out.replace_range(at..at + prefix.len() + digits.len(), &file);
            }
        }
        out
    };
    let mut args = Vec::new();
    let mut it = lines.peekable();
    while let Some(a) = it.next() {
        if ["-sandbox", "-add-fd", "-chardev", "-mon", "-serial"].contains(&a) {
            it.next();
            continue;
        }
        // The CD overlay's backing file is in its own header.
        let a = a.split(",backing.").next().unwrap();
        args.push(fd_path(a));
    }
    args.extend([
        "-serial".to_owned(),
        format!("file:{}", vm_dir.join("console.log").display()),
        "-daemonize".to_owned(),
        "-pidfile".to_owned(),
        vm_dir.join("qemu.pid").display().to_string(),
    ]);
    (program, args)
}
