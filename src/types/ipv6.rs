//! IPv6 values: an address in hex-and-colons form only (no embedded
//! dotted quad, no zone), and an interface address with its prefix
//! length (`2001:db8::10/64`). Both print in the canonical compressed
//! lowercase form, which holds only hex digits and colons.

use super::Rule;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

const ADDR_RULE: Rule = Rule("must be an IPv6 address in hex-and-colons form such as 2001:db8::10");

/// An IPv6 address written with hex digits and colons only: no zone
/// (`%eth0`) and no dotted-quad tail, so what is accepted prints back as
/// the same kind of text.
pub fn parse_ipv6(s: &str) -> Result<Ipv6Addr, Rule> {
    if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
        return Err(ADDR_RULE);
    }
    Ipv6Addr::from_str(s).map_err(|_| ADDR_RULE)
}

/// fe80::/10: on-link only, valid as a gateway, never as a machine's
/// configured address.
pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Addresses no machine or gateway can have: unspecified, loopback,
/// multicast, and the IPv4-compatible and IPv4-mapped ranges (::/96,
/// ::ffff:0:0/96), which also print as dotted quads.
pub fn is_special(a: Ipv6Addr) -> bool {
    let s = a.segments();
    let v4ish = s[..5].iter().all(|&x| x == 0) && (s[5] == 0 || s[5] == 0xffff);
    a.is_multicast() || v4ish
}

/// The bits of `a` inside a prefix of `len` bits.
pub fn network_of(a: Ipv6Addr, len: u8) -> u128 {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
    u128::from(a) & mask
}

/// A machine's IPv6 address with its prefix length: a unicast global or
/// unique-local address, /1 to /128, and not the prefix's Subnet-Router
/// anycast address (all host bits zero) on a prefix shorter than /127.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Cidr {
    addr: Ipv6Addr,
    prefix: u8,
}

impl Ipv6Cidr {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        const SHAPE: Rule = Rule("must be an IPv6 address and its prefix length, such as 2001:db8::10/64");
        let (a, len) = s.split_once('/').ok_or(SHAPE)?;
        let addr = parse_ipv6(a).map_err(|_| SHAPE)?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) || (len.len() > 1 && len.starts_with('0')) {
            return Err(SHAPE);
        }
        let prefix: u16 = len.parse().map_err(|_| SHAPE)?;
        if !(1..=128).contains(&prefix) {
            return Err(Rule("must have a prefix length from 1 to 128"));
        }
        let prefix = prefix as u8;
        if is_special(addr) || is_link_local(addr) {
            return Err(Rule("must be a unicast global or unique-local IPv6 address (not link-local, loopback, multicast or IPv4-mapped)"));
        }
        if prefix < 127 && network_of(addr, prefix) == u128::from(addr) {
            return Err(Rule("must be a host address, not the prefix itself (all host bits zero)"));
        }
        Ok(Ipv6Cidr { addr, prefix })
    }
    pub fn addr(self) -> Ipv6Addr {
        self.addr
    }
    pub fn prefix_len(self) -> u8 {
        self.prefix
    }
    /// Whether `a` lies in this address's prefix.
    pub fn contains(self, a: Ipv6Addr) -> bool {
        network_of(a, self.prefix) == network_of(self.addr, self.prefix)
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_hex_and_colons_only_and_print_canonically() {
        assert_eq!(parse_ipv6("2001:DB8:0:0::10").unwrap().to_string(), "2001:db8::10");
        for bad in ["", "::ffff:192.0.2.1", "fe80::1%eth0", "2001:db8::1/64", "2001:db8:::1", "g::1", " ::1", &"1:".repeat(20)] {
            assert!(parse_ipv6(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_machine_address_is_unicast_with_a_sane_prefix() {
        let c = Ipv6Cidr::parse("2001:db8::10/64").unwrap();
        assert_eq!((c.to_string().as_str(), c.prefix_len()), ("2001:db8::10/64", 64));
        assert!(c.contains("2001:db8::1".parse().unwrap()) && !c.contains("2001:db8:1::1".parse().unwrap()));
        assert!(Ipv6Cidr::parse("2001:db8::10/128").is_ok());
        assert!(Ipv6Cidr::parse("2001:db8::/127").is_ok());
        for bad in [
            "2001:db8::10", "2001:db8::10/129", "2001:db8::10/0", "2001:db8::10/064", "2001:db8::10/", "2001:db8::10/64/1",
            "2001:db8::/64", "fe80::10/64", "::1/128", "::/0", "ff02::1/64", "::ffff:c000:201/96", "192.0.2.10/24", "2001:db8::10/1000",
        ] {
            assert!(Ipv6Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }
}
