//! A network of the test's own for guests that need one: a network
//! namespace with a bridge in it, the host side on a documentation
//! address (192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24: nothing
//! there is anybody's). Run the program inside it (`ip netns exec`) and
//! the qemu driver's taps (`qemu_net = "bridge"`) join the bridge there;
//! run `ssh` inside it to reach the guests. Nothing leaves the namespace:
//! it has no route out. Removed on drop, also when the test fails.
//!
//! The recipe, by hand:
//!
//! ```sh
//! ip netns add NS
//! ip netns exec NS ip link set lo up
//! ip netns exec NS ip link add gibr0 type bridge
//! ip netns exec NS ip addr add 192.0.2.1/24 dev gibr0
//! ip netns exec NS ip link set gibr0 up
//! # config.toml: [hypervisor] driver = "qemu", qemu_net = "bridge", bridge = "gibr0"
//! ip netns exec NS guest-installer install VM ...
//! ip netns exec NS ssh root@192.0.2.11
//! ip netns del NS
//! ```

use std::process::{Command, Stdio};

/// The bridge's name inside every namespace (namespaces keep names apart).
pub const BRIDGE: &str = "gibr0";

pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// A new namespace `gi-PID-TAG` whose bridge [`BRIDGE`] has
    /// `host_cidr` (e.g. `192.0.2.1/24`).
    pub fn new(tag: &str, host_cidr: &str) -> NetNs {
        Self::with_bridge(tag, BRIDGE, host_cidr)
    }

    /// The same with the bridge named `bridge` (e.g. the operator
    /// guide's `br0`).
    pub fn with_bridge(tag: &str, bridge: &str, host_cidr: &str) -> NetNs {
        let ip = host_cidr.split('/').next().unwrap_or("");
        assert!(
            ["192.0.2.", "198.51.100.", "203.0.113."].iter().any(|p| ip.starts_with(p)),
            "{host_cidr}: test networks use documentation addresses only"
        );
        let name = format!("gi-{}-{tag}", std::process::id());
        must(Command::new("ip").args(["netns", "add", &name]));
        // From here on, drop removes it whatever fails.
        let ns = NetNs { name };
        must(&mut ns.cmd("ip", &["link", "set", "lo", "up"]));
        must(&mut ns.cmd("ip", &["link", "add", bridge, "type", "bridge"]));
        must(&mut ns.cmd("ip", &["addr", "add", host_cidr, "dev", bridge]));
        must(&mut ns.cmd("ip", &["link", "set", bridge, "up"]));
        ns
    }

    /// Another address for the bridge: a documentation one (IPv4 as
    /// above, or IPv6 in 2001:db8::/32), e.g. `2001:db8:1::1/64`.
    pub fn add_addr(&self, cidr: &str) {
        let ip = cidr.split('/').next().unwrap_or("");
        assert!(
            ip.starts_with("2001:db8:") || ["192.0.2.", "198.51.100.", "203.0.113."].iter().any(|p| ip.starts_with(p)),
            "{cidr}: test networks use documentation addresses only"
        );
        // nodad: usable at once, not after duplicate address detection.
        let mut args = vec!["addr", "add", cidr, "dev", BRIDGE];
        if ip.contains(':') {
            args.push("nodad");
        }
        must(&mut self.cmd("ip", &args));
    }

    /// `program args` to run inside the namespace.
    pub fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).args(args);
        c
    }

    /// The argv prefix that runs a program inside the namespace.
    pub fn prefix(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    /// The interfaces plugged into the bridge (the guests' taps).
    pub fn ports(&self) -> Vec<String> {
        let o = self.cmd("ls", &[&format!("/sys/class/net/{BRIDGE}/brif")]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Guests (and their taps) should be gone first; a tap still held by
        // a qemu goes with it when the qemu exits.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}

fn must(c: &mut Command) {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(o.status.success(), "{c:?} failed: {}", String::from_utf8_lossy(&o.stderr));
}
