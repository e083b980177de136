//! A machine's network configuration: static IPv4, static IPv6, both, or
//! DHCP (the site's DHCP server holds a reservation for its MAC), with the
//! name servers it uses. The fields are checked together (a gateway on
//! the machine's subnet, name servers of a family it has), so a value of
//! [`Network`] is always a configuration a guest can bring up.
//!
//! In the registry it is the object `machine add` was given: `ip`,
//! `netmask`, `gateway` (IPv4, or `ip` = `dhcp`), `ip6` (`ADDR/LEN`),
//! `gateway6` and `nameservers`; entries written before IPv6 and DHCP
//! were known read as they always did.

use super::ipv6::{is_link_local, is_special, parse_ipv6, Ipv6Cidr};
use super::network::{parse_ipv4, Netmask};
use super::Rule;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const MAX_NAMESERVERS: usize = 3;

/// Which field of a network config broke which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldRule {
    pub field: &'static str,
    pub rule: Rule,
}

fn refuse<T>(field: &'static str, rule: &'static str) -> Result<T, FieldRule> {
    Err(FieldRule { field, rule: Rule(rule) })
}

/// A static IPv4 address, its netmask and a gateway that is another host
/// on its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Static {
    ip: Ipv4Addr,
    netmask: Netmask,
    gateway: Ipv4Addr,
}

impl Ipv4Static {
    fn new(ip: &str, netmask: &str, gateway: &str) -> Result<Self, FieldRule> {
        let f = |field: &'static str| move |rule: Rule| FieldRule { field, rule };
        let ip = parse_ipv4(ip).map_err(f("ip"))?;
        let netmask = Netmask::parse(netmask).map_err(f("netmask"))?;
        if parse_ipv6(gateway).is_ok() {
            return refuse("gateway", "takes an IPv4 address; give an IPv6 gateway as gateway6=");
        }
        let gateway = parse_ipv4(gateway).map_err(f("gateway"))?;
        let mask = u32::from(netmask.addr());
        let host = |a: Ipv4Addr| {
            let v = u32::from(a);
            v & !mask != 0 && v & !mask != !mask
        };
        if !host(ip) || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return refuse("ip", "must be a unicast host address on its subnet (not the network or broadcast address)");
        }
        if u32::from(gateway) & mask != u32::from(ip) & mask || !host(gateway) || gateway == ip {
            return refuse("gateway", "must be another host address on the machine's subnet");
        }
        Ok(Ipv4Static { ip, netmask, gateway })
    }
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    pub fn netmask(&self) -> Netmask {
        self.netmask
    }
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }
}

/// A static IPv6 address with its prefix length and a gateway that is
/// link-local (fe80::/10, as routers advertise themselves) or another
/// address in the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Static {
    addr: Ipv6Cidr,
    gateway: Ipv6Addr,
}

impl Ipv6Static {
    fn new(ip6: &str, gateway6: &str) -> Result<Self, FieldRule> {
        if parse_ipv4(ip6.split('/').next().unwrap_or("")).is_ok() {
            return refuse("ip6", "takes an IPv6 address; give an IPv4 address as ip= netmask= gateway=");
        }
        let addr = Ipv6Cidr::parse(ip6).map_err(|rule| FieldRule { field: "ip6", rule })?;
        if parse_ipv4(gateway6).is_ok() {
            return refuse("gateway6", "takes an IPv6 address; give an IPv4 gateway as gateway=");
        }
        let gateway = parse_ipv6(gateway6).map_err(|rule| FieldRule { field: "gateway6", rule })?;
        let on_link = is_link_local(gateway) && gateway.segments()[1..4] == [0, 0, 0] && u128::from(gateway) & u64::MAX as u128 != 0;
        let in_prefix = addr.contains(gateway) && !is_special(gateway) && !is_link_local(gateway);
        if !(on_link || in_prefix) || gateway == addr.addr() {
            return refuse("gateway6", "must be a link-local address (fe80::/64) or another address in the machine's ip6 prefix");
        }
        Ok(Ipv6Static { addr, gateway })
    }
    pub fn addr(&self) -> Ipv6Cidr {
        self.addr
    }
    pub fn gateway(&self) -> Ipv6Addr {
        self.gateway
    }
    /// Whether the gateway is reached by its link-local address (d-i's
    /// netcfg takes only a gateway inside the prefix).
    pub fn gateway_is_link_local(&self) -> bool {
        is_link_local(self.gateway)
    }
}

/// How a machine gets its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    V4(Ipv4Static),
    V6(Ipv6Static),
    Dual(Ipv4Static, Ipv6Static),
    /// Everything (address, gateway, name servers) from the site's DHCP
    /// server, which holds a reservation for the machine's MAC.
    Dhcp,
}

/// A machine's network: its addressing and the name servers it uses
/// (one to three, of families it has; none with DHCP, whose server gives
/// them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NetworkRaw", into = "NetworkRaw")]
pub struct Network {
    addressing: Addressing,
    nameservers: Vec<IpAddr>,
}

/// The words of a network configuration as given (`machine add`'s keys,
/// or the registry's fields), before they are checked together.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetworkFields<'a> {
    pub ip: Option<&'a str>,
    pub netmask: Option<&'a str>,
    pub gateway: Option<&'a str>,
    pub ip6: Option<&'a str>,
    pub gateway6: Option<&'a str>,
    pub nameservers: &'a [&'a str],
}

/// What `ip=` says to use DHCP.
pub const DHCP: &str = "dhcp";

impl Network {
    /// A static IPv4 network (the configuration every machine had before
    /// IPv6 and DHCP).
    pub fn new(ip: &str, netmask: &str, gateway: &str, nameservers: &[&str]) -> Result<Self, FieldRule> {
        Network::from_fields(&NetworkFields { ip: Some(ip), netmask: Some(netmask), gateway: Some(gateway), nameservers, ..Default::default() })
    }

    pub fn from_fields(f: &NetworkFields) -> Result<Self, FieldRule> {
        if f.ip == Some(DHCP) {
            for (field, given) in [("netmask", f.netmask), ("gateway", f.gateway), ("ip6", f.ip6), ("gateway6", f.gateway6)] {
                if given.is_some() {
                    return refuse(field, "does not go with ip=dhcp (the DHCP server gives the whole configuration)");
                }
            }
            if !f.nameservers.is_empty() {
                return refuse("nameserver", "does not go with ip=dhcp (the DHCP server gives the name servers)");
            }
            return Ok(Network { addressing: Addressing::Dhcp, nameservers: Vec::new() });
        }
        // The address first: its message is the one that helps.
        if let Some(ip) = f.ip {
            if parse_ipv6(ip).is_ok() {
                return refuse("ip", "takes an IPv4 address; give an IPv6 address as ip6=ADDR/LEN");
            }
            parse_ipv4(ip).map_err(|rule| FieldRule { field: "ip", rule })?;
        }
        let v4 = match (f.ip, f.netmask, f.gateway) {
            (Some(ip), Some(m), Some(g)) => Some(Ipv4Static::new(ip, m, g)?),
            (None, None, None) => None,
            (Some(_), None, _) => return refuse("netmask", "missing: ip= needs netmask= and gateway="),
            (Some(_), _, None) => return refuse("gateway", "missing: ip= needs netmask= and gateway="),
            (None, Some(_), _) => return refuse("netmask", "needs ip= (an IPv4 address)"),
            (None, _, Some(_)) => return refuse("gateway", "needs ip= (an IPv4 address)"),
        };
        let v6 = match (f.ip6, f.gateway6) {
            (Some(a), Some(g)) => Some(Ipv6Static::new(a, g)?),
            (None, None) => None,
            (Some(_), None) => return refuse("gateway6", "missing: ip6= needs gateway6="),
            (None, Some(_)) => return refuse("gateway6", "needs ip6=ADDR/LEN"),
        };
        let addressing = match (v4, v6) {
            (Some(a), Some(b)) => Addressing::Dual(a, b),
            (Some(a), None) => Addressing::V4(a),
            (None, Some(b)) => Addressing::V6(b),
            (None, None) => {
                return refuse("ip", "missing: give ip= netmask= gateway= (IPv4), ip6=ADDR/LEN gateway6=ADDR (IPv6), both, or ip=dhcp")
            }
        };
        if f.nameservers.is_empty() || f.nameservers.len() > MAX_NAMESERVERS {
            return refuse("nameserver", "give one to three name servers");
        }
        let mut nameservers = Vec::new();
        for n in f.nameservers {
            let a = match (parse_ipv4(n), parse_ipv6(n)) {
                (Ok(a), _) => IpAddr::V4(a),
                (_, Ok(a)) => IpAddr::V6(a),
                _ => return refuse("nameserver", "must be an IPv4 address (dotted quad, no leading zeros) or an IPv6 address in hex-and-colons form"),
            };
            let usable = match a {
                IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
                IpAddr::V6(a) => !(is_special(a) || is_link_local(a)),
            };
            if !usable {
                return refuse("nameserver", "must be a unicast address (IPv6: not link-local, loopback or IPv4-mapped)");
            }
            let reachable = !matches!((a, &addressing), (IpAddr::V4(_), Addressing::V6(_)) | (IpAddr::V6(_), Addressing::V4(_)));
            if !reachable {
                return refuse("nameserver", "must be of an address family the machine has (an IPv4 server needs ip=, an IPv6 one ip6=)");
            }
            nameservers.push(a);
        }
        Ok(Network { addressing, nameservers })
    }

    pub fn addressing(&self) -> &Addressing {
        &self.addressing
    }
    pub fn v4(&self) -> Option<&Ipv4Static> {
        match &self.addressing {
            Addressing::V4(a) | Addressing::Dual(a, _) => Some(a),
            _ => None,
        }
    }
    pub fn v6(&self) -> Option<&Ipv6Static> {
        match &self.addressing {
            Addressing::V6(b) | Addressing::Dual(_, b) => Some(b),
            _ => None,
        }
    }
    pub fn is_dhcp(&self) -> bool {
        self.addressing == Addressing::Dhcp
    }
    pub fn nameservers(&self) -> &[IpAddr] {
        &self.nameservers
    }
    /// The static addresses, for telling machines apart (two must never
    /// share one).
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        out.extend(self.v4().map(|a| IpAddr::V4(a.ip())));
        out.extend(self.v6().map(|b| IpAddr::V6(b.addr().addr())));
        out
    }
    /// What `list` shows as `ip`: the IPv4 address, `dhcp`, or nothing.
    pub fn ip_word(&self) -> Option<String> {
        if self.is_dhcp() {
            return Some(DHCP.into());
        }
        self.v4().map(|a| a.ip().to_string())
    }
    /// One line for people: `192.0.2.10/24 via 192.0.2.1, 2001:db8::10/64 via fe80::1`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.is_dhcp() {
            parts.push("DHCP".to_owned());
        }
        if let Some(a) = self.v4() {
            parts.push(format!("{}/{} via {}", a.ip(), a.netmask().prefix_len(), a.gateway()));
        }
        if let Some(b) = self.v6() {
            parts.push(format!("{} via {}", b.addr(), b.gateway()));
        }
        parts.join(", ")
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkRaw {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netmask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway6: Option<String>,
    #[serde(default)]
    nameservers: Vec<String>,
}

impl TryFrom<NetworkRaw> for Network {
    type Error = FieldRule;
    fn try_from(r: NetworkRaw) -> Result<Self, FieldRule> {
        let ns: Vec<&str> = r.nameservers.iter().map(String::as_str).collect();
        Network::from_fields(&NetworkFields {
            ip: r.ip.as_deref(),
            netmask: r.netmask.as_deref(),
            gateway: r.gateway.as_deref(),
            ip6: r.ip6.as_deref(),
            gateway6: r.gateway6.as_deref(),
            nameservers: &ns,
        })
    }
}

impl From<Network> for NetworkRaw {
    fn from(n: Network) -> Self {
        let v4 = n.v4().copied();
        let v6 = n.v6().copied();
        NetworkRaw {
            ip: n.ip_word(),
            netmask: v4.map(|a| a.netmask().to_string()),
            gateway: v4.map(|a| a.gateway().to_string()),
            ip6: v6.map(|b| b.addr().to_string()),
            gateway6: v6.map(|b| b.gateway().to_string()),
            nameservers: n.nameservers.iter().map(|a| a.to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(words: &[&str]) -> Result<Network, FieldRule> {
        let get = |k: &str| words.iter().find_map(|w| w.strip_prefix(k).and_then(|r| r.strip_prefix('=')));
        let ns: Vec<&str> = words.iter().filter_map(|w| w.strip_prefix("nameserver=")).collect();
        Network::from_fields(&NetworkFields {
            ip: get("ip"),
            netmask: get("netmask"),
            gateway: get("gateway"),
            ip6: get("ip6"),
            gateway6: get("gateway6"),
            nameservers: &ns,
        })
    }

    #[test]
    fn each_family_both_or_dhcp() {
        let v4 = net(&["ip=192.0.2.10", "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=192.0.2.53"]).unwrap();
        assert!(matches!(v4.addressing(), Addressing::V4(_)));
        let v6 = net(&["ip6=2001:db8::10/64", "gateway6=fe80::1", "nameserver=2001:db8::53"]).unwrap();
        assert!(v6.v6().unwrap().gateway_is_link_local() && v6.v4().is_none());
        let dual = net(&["ip=192.0.2.10", "netmask=255.255.255.0", "gateway=192.0.2.1", "ip6=2001:db8::10/64", "gateway6=2001:db8::1", "nameserver=192.0.2.53", "nameserver=2001:db8::53"]).unwrap();
        assert_eq!(dual.addresses().len(), 2);
        assert_eq!(dual.describe(), "192.0.2.10/24 via 192.0.2.1, 2001:db8::10/64 via 2001:db8::1");
        let dhcp = net(&["ip=dhcp"]).unwrap();
        assert!(dhcp.is_dhcp() && dhcp.addresses().is_empty());
        // Each round-trips through the registry's form.
        for n in [v4, v6, dual, dhcp] {
            let j = serde_json::to_string(&n).unwrap();
            assert_eq!(serde_json::from_str::<Network>(&j).unwrap(), n, "{j}");
        }
    }

    #[test]
    fn an_entry_from_before_ipv6_reads_and_writes_unchanged() {
        let old = r#"{"ip":"192.0.2.10","netmask":"255.255.255.0","gateway":"192.0.2.1","nameservers":["192.0.2.53"]}"#;
        let n: Network = serde_json::from_str(old).unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), old);
        assert!(serde_json::from_str::<Network>(r#"{"ip":"dhcp","nameservers":[],"late":"x"}"#).is_err());
    }

    #[test]
    fn refusals_name_their_field() {
        let v4 = ["ip=192.0.2.10", "netmask=255.255.255.0", "gateway=192.0.2.1"];
        let cases: &[(&[&str], &str)] = &[
            (&["ip6=2001:db8::10/129", "gateway6=fe80::1", "nameserver=2001:db8::53"], "ip6"),
            (&["ip6=2001:db8::10/64", "gateway6=2001:db9::1", "nameserver=2001:db8::53"], "gateway6"),
            (&["ip6=2001:db8::10/64", "gateway6=2001:db8::10", "nameserver=2001:db8::53"], "gateway6"),
            (&["ip6=2001:db8::10/64", "gateway6=ff02::1", "nameserver=2001:db8::53"], "gateway6"),
            (&["ip6=2001:db8::10/64", "gateway6=fe80:1::1", "nameserver=2001:db8::53"], "gateway6"),
            (&["ip6=2001:db8::10/64", "gateway6=192.0.2.1", "nameserver=2001:db8::53"], "gateway6"),
            (&["ip6=192.0.2.10/24", "gateway6=fe80::1", "nameserver=2001:db8::53"], "ip6"),
            (&["ip6=2001:db8::10/64", "nameserver=2001:db8::53"], "gateway6"),
            (&["gateway6=fe80::1", "ip=192.0.2.10", "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=192.0.2.53"], "gateway6"),
            (&["ip=2001:db8::10", "netmask=255.255.255.0", "gateway=192.0.2.1", "nameserver=192.0.2.53"], "ip"),
            (&["ip=192.0.2.10", "netmask=255.255.255.0", "gateway=2001:db8::1", "nameserver=192.0.2.53"], "gateway"),
            (&["ip6=2001:db8::10/64", "gateway6=fe80::1", "nameserver=192.0.2.53"], "nameserver"),
            (&["ip6=2001:db8::10/64", "gateway6=fe80::1", "nameserver=fe80::53"], "nameserver"),
            (&["ip6=2001:db8::10/64", "gateway6=fe80::1"], "nameserver"),
            (&["ip=dhcp", "netmask=255.255.255.0"], "netmask"),
            (&["ip=dhcp", "ip6=2001:db8::10/64", "gateway6=fe80::1"], "ip6"),
            (&["ip=dhcp", "nameserver=192.0.2.53"], "nameserver"),
            (&["gateway=192.0.2.1", "nameserver=192.0.2.53"], "gateway"),
            (&["netmask=255.255.255.0", "nameserver=192.0.2.53"], "netmask"),
            (&["ip=192.0.2.10", "nameserver=192.0.2.53"], "netmask"),
            (&["nameserver=192.0.2.53"], "ip"),
            (&["ip=DHCP"], "ip"),
        ];
        for (words, field) in cases {
            assert_eq!(net(words).map_err(|e| e.field), Err(*field), "{words:?}");
        }
        let with = |extra: &str| {
            let mut w = v4.to_vec();
            w.push(extra);
            net(&w).map_err(|e| e.field)
        };
        assert_eq!(with("nameserver=2001:db8::53"), Err("nameserver"));
        assert_eq!(with("nameserver=::1"), Err("nameserver"));
        assert!(with("nameserver=192.0.2.53").is_ok());
    }
}
