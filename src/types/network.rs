//! A machine's Ethernet address and the IPv4 values of its network:
//! addresses in canonical dotted quads and netmasks (how they combine into
//! a network configuration is `netconfig`).

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

