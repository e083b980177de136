//! A machine's addresses: its Ethernet address and its static IPv4
//! network, which are checked together (the gateway must be on the subnet).

use super::Rule;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A unicast Ethernet address, stored as `xx:xx:xx:xx:xx:xx` in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac([u8; 6]);

impl Mac {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        const RULE: Rule = Rule("must be six two-digit hex bytes separated by ':', unicast (first byte even)");
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(RULE);
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RULE);
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| RULE)?;
        }
        if out[0] & 1 != 0 {
            return Err(RULE);
        }
        Ok(Mac(out))
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Mac::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Dotted-quad IPv4 only: no leading zeros (which some parsers read as
/// octal), no IPv6, no shorthand forms.
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, Rule> {
    const RULE: Rule = Rule("must be a dotted-quad IPv4 address such as 192.0.2.10 (no leading zeros)");
    let octets: Vec<&str> = s.split('.').collect();
    if octets.len() != 4
        || octets.iter().any(|o| o.is_empty() || o.len() > 3 || (o.len() > 1 && o.starts_with('0')) || !o.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(RULE);
    }
    Ipv4Addr::from_str(s).map_err(|_| RULE)
}

/// A contiguous IPv4 netmask, /8 to /30 (a guest needs a host address and
/// a gateway on its subnet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netmask(Ipv4Addr);

impl Netmask {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        const RULE: Rule = Rule("must be a contiguous netmask from 255.0.0.0 to 255.255.255.252");
        let a = parse_ipv4(s).map_err(|_| RULE)?;
        let bits = u32::from(a);
        let prefix = bits.leading_ones();
        if bits.count_ones() != prefix || !(8..=30).contains(&prefix) {
            return Err(RULE);
        }
        Ok(Netmask(a))
    }
    pub fn addr(self) -> Ipv4Addr {
        self.0
    }
    pub fn prefix_len(self) -> u32 {
        u32::from(self.0).leading_ones()
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A machine's static IPv4 network: address, mask, gateway and name
/// servers, checked together (the gateway must be a host on the subnet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NetworkRaw", into = "NetworkRaw")]
pub struct Network {
    ip: Ipv4Addr,
    netmask: Netmask,
    gateway: Ipv4Addr,
    nameservers: Vec<Ipv4Addr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkRaw {
    ip: String,
    netmask: String,
    gateway: String,
    nameservers: Vec<String>,
}

/// Which field of a network config broke which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldRule {
    pub field: &'static str,
    pub rule: Rule,
}

pub const MAX_NAMESERVERS: usize = 3;

impl Network {
    pub fn new(ip: &str, netmask: &str, gateway: &str, nameservers: &[&str]) -> Result<Self, FieldRule> {
        let f = |field: &'static str| move |rule: Rule| FieldRule { field, rule };
        let ip = parse_ipv4(ip).map_err(f("ip"))?;
        let netmask = Netmask::parse(netmask).map_err(f("netmask"))?;
        let gateway = parse_ipv4(gateway).map_err(f("gateway"))?;
        if nameservers.is_empty() || nameservers.len() > MAX_NAMESERVERS {
            return Err(FieldRule { field: "nameserver", rule: Rule("give one to three name servers") });
        }
        let nameservers = nameservers
            .iter()
            .map(|n| parse_ipv4(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(f("nameserver"))?;
        let mask = u32::from(netmask.addr());
        let host = |a: Ipv4Addr| {
            let v = u32::from(a);
            v & !mask != 0 && v & !mask != !mask
        };
        if !host(ip) || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return Err(FieldRule { field: "ip", rule: Rule("must be a unicast host address on its subnet (not the network or broadcast address)") });
        }
        if u32::from(gateway) & mask != u32::from(ip) & mask || !host(gateway) || gateway == ip {
            return Err(FieldRule { field: "gateway", rule: Rule("must be another host address on the machine's subnet") });
        }
        Ok(Network { ip, netmask, gateway, nameservers })
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
    pub fn nameservers(&self) -> &[Ipv4Addr] {
        &self.nameservers
    }
}

impl TryFrom<NetworkRaw> for Network {
    type Error = FieldRule;
    fn try_from(r: NetworkRaw) -> Result<Self, FieldRule> {
        let ns: Vec<&str> = r.nameservers.iter().map(String::as_str).collect();
        Network::new(&r.ip, &r.netmask, &r.gateway, &ns)
    }
}

impl From<Network> for NetworkRaw {
    fn from(n: Network) -> Self {
        NetworkRaw {
            ip: n.ip.to_string(),
            netmask: n.netmask.to_string(),
            gateway: n.gateway.to_string(),
            nameservers: n.nameservers.iter().map(|a| a.to_string()).collect(),
        }
    }
}
