//! A machine's network as debian-installer's netcfg takes it, and what
//! netcfg cannot do, done in the installed system instead.
//!
//! netcfg configures one address family statically: `netcfg/get_ipaddress`
//! takes `2001:db8::10/64` (the prefix length in the address; a bare `64`
//! in `netcfg/get_netmask` is refused, it wants a mask), and it refuses a
//! gateway outside the prefix (it would ask again for ever). So:
//!
//! - IPv4 or IPv6 alone: netcfg, static (`disable_autoconfig`), which
//!   writes an `inet` or `inet6 static` stanza to /etc/network/interfaces;
//!   a link-local IPv6 gateway is added to that stanza afterwards (during
//!   the install the router's advertisements give the route);
//! - both: IPv4 through netcfg, and an `inet6 static` stanza for the same
//!   interface appended to the installed system's /etc/network/interfaces;
//! - DHCP: netcfg's autoconfiguration (DHCP, and whatever the routers
//!   advertise for IPv6), which the installed system keeps.
//!
//! The script runs in the installed system from our late_command; every
//! value in it is a validated address (hex digits, dots, colons, a slash).

use crate::types::{Addressing, Ipv6Static, Network};

/// Our answers to netcfg's questions for `n`.
pub fn answers(n: &Network) -> Vec<String> {
    let ns: Vec<String> = n.nameservers().iter().map(|a| a.to_string()).collect();
    let mut out = Vec::new();
    match n.addressing() {
        Addressing::Dhcp => {
            out.push("d-i netcfg/disable_autoconfig boolean false".to_owned());
            out.push("d-i netcfg/use_autoconfig boolean true".to_owned());
            return out;
        }
        Addressing::V4(a) | Addressing::Dual(a, _) => {
            out.push("d-i netcfg/disable_autoconfig boolean true".to_owned());
            out.push(format!("d-i netcfg/get_ipaddress string {}", a.ip()));
            out.push(format!("d-i netcfg/get_netmask string {}", a.netmask()));
            out.push(format!("d-i netcfg/get_gateway string {}", a.gateway()));
        }
        Addressing::V6(b) => {
            out.push("d-i netcfg/disable_autoconfig boolean true".to_owned());
            out.push(format!("d-i netcfg/get_ipaddress string {}", b.addr()));
            let gw = if b.gateway_is_link_local() { "none".to_owned() } else { b.gateway().to_string() };
            out.push(format!("d-i netcfg/get_gateway string {gw}"));
        }
    }
    out.push(format!("d-i netcfg/get_nameservers string {}", ns.join(" ")));
    out.push("d-i netcfg/confirm_static boolean true".to_owned());
    out
}

/// The shell script that completes, in the installed system, what netcfg
/// could not configure; `None` when netcfg did it all.
pub fn target_script(n: &Network) -> Option<String> {
    let body = match n.addressing() {
        Addressing::Dual(_, b) => add_inet6_stanza(b),
        Addressing::V6(b) if b.gateway_is_link_local() => add_link_local_gateway(b),
        _ => return None,
    };
    Some(format!("# guest-installer: the network netcfg could not configure\nset -eu\n{body}"))
}

const INTERFACES: &str = "/etc/network/interfaces";

/// The interface netcfg wrote a static stanza of `family` for.
fn find_iface(family: &str) -> String {
    format!(
        "iface=$(sed -n 's/^iface \\([^ ]*\\) {family} static$/\\1/p' {INTERFACES} | head -n 1)\n\
         [ -n \"$iface\" ] || {{ echo 'guest-installer: no {family} static stanza in {INTERFACES}' >&2; exit 1; }}\n"
    )
}

fn add_inet6_stanza(b: &Ipv6Static) -> String {
    format!(
        "{}printf '\\niface %s inet6 static\\n\\taddress %s\\n\\tgateway %s\\n' \"$iface\" '{}' '{}' >>{INTERFACES}\n",
        find_iface("inet"),
        b.addr(),
        b.gateway()
    )
}

fn add_link_local_gateway(b: &Ipv6Static) -> String {
    format!(
        "{}sed -i \"s/^iface $iface inet6 static\\$/&\\n\\tgateway {}/\" {INTERFACES}\n",
        find_iface("inet6"),
        b.gateway()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NetworkFields;
    use std::process::Command;

    fn net(ip: Option<&str>, ip6: Option<(&str, &str)>, ns: &[&str]) -> Network {
        Network::from_fields(&NetworkFields {
            ip,
            netmask: ip.filter(|i| *i != "dhcp").map(|_| "255.255.255.0"),
            gateway: ip.filter(|i| *i != "dhcp").map(|_| "192.0.2.1"),
            ip6: ip6.map(|p| p.0),
            gateway6: ip6.map(|p| p.1),
            nameservers: ns,
        })
        .unwrap()
    }

    /// What netcfg wrote (as its netcfg_write_static_ipv4/_ipv6 do) with
    /// our script run on it, by the real sh and sed.
    fn run(name: &str, script: &str, interfaces: &str) -> String {
        let dir = std::env::temp_dir().join(format!("gi-netcfg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("interfaces");
        std::fs::write(&f, interfaces).unwrap();
        let o = Command::new("sh").arg("-c").arg(script.replace(INTERFACES, f.to_str().unwrap())).output().unwrap();
        let out = std::fs::read_to_string(&f).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    }

    const V4_STANZA: &str = "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n# The primary network interface\nallow-hotplug ens3\niface ens3 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n\t# dns-* options are implemented by the resolvconf package, if installed\n\tdns-nameservers 192.0.2.53\n";

    #[test]
    fn one_family_goes_through_netcfg_alone() {
        let v4 = answers(&net(Some("192.0.2.10"), None, &["192.0.2.53"]));
        assert!(v4.contains(&"d-i netcfg/get_netmask string 255.255.255.0".to_owned()), "{v4:?}");
        assert!(target_script(&net(Some("192.0.2.10"), None, &["192.0.2.53"])).is_none());
        let v6 = net(None, Some(("2001:db8::10/64", "2001:db8::1")), &["2001:db8::53"]);
        let a = answers(&v6);
        assert!(a.contains(&"d-i netcfg/get_ipaddress string 2001:db8::10/64".to_owned()), "{a:?}");
        assert!(a.contains(&"d-i netcfg/get_gateway string 2001:db8::1".to_owned()), "{a:?}");
        assert!(!a.iter().any(|l| l.contains("get_netmask")), "netcfg refuses a bare prefix length: {a:?}");
        assert!(target_script(&v6).is_none());
        let dhcp = answers(&net(Some("dhcp"), None, &[]));
        assert_eq!(dhcp, ["d-i netcfg/disable_autoconfig boolean false", "d-i netcfg/use_autoconfig boolean true"]);
    }

    #[test]
    fn dual_stack_adds_an_inet6_stanza_for_netcfgs_interface() {
        let n = net(Some("192.0.2.10"), Some(("2001:db8::10/64", "fe80::1")), &["192.0.2.53", "2001:db8::53"]);
        assert!(answers(&n).contains(&"d-i netcfg/get_nameservers string 192.0.2.53 2001:db8::53".to_owned()));
        let out = run("dual", &target_script(&n).unwrap(), V4_STANZA);
        assert_eq!(out, format!("{V4_STANZA}\niface ens3 inet6 static\n\taddress 2001:db8::10/64\n\tgateway fe80::1\n"));
        // No stanza of netcfg's: the script fails (the install stops there).
        let o = Command::new("sh").arg("-c").arg(target_script(&n).unwrap().replace(INTERFACES, "/dev/null")).output().unwrap();
        assert!(!o.status.success());
    }

    #[test]
    fn a_link_local_gateway_joins_netcfgs_inet6_stanza() {
        let n = net(None, Some(("2001:db8::10/64", "fe80::1")), &["2001:db8::53"]);
        assert!(answers(&n).contains(&"d-i netcfg/get_gateway string none".to_owned()));
        let stanza = "auto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet6 static\n\taddress 2001:db8::10\n\tnetmask 64\n";
        let out = run("v6", &target_script(&n).unwrap(), stanza);
        assert_eq!(out, stanza.replace("inet6 static\n", "inet6 static\n\tgateway fe80::1\n"));
    }
}
