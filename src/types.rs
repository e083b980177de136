//! Parse, don't validate: every value that can reach a preseed, a boot
//! config, a domain config, a file name or an argv is one of these types,
//! and a value of these types is always safe to use there. None of them can
//! hold a control character, a space, a quote or a backslash.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why a value was refused: the rule it broke, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rule(pub &'static str);

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

macro_rules! string_type {
    ($(#[$m:meta])* $name:ident, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, Rule> {
                let check: fn(&str) -> Result<(), Rule> = $check;
                check(s)?;
                Ok($name(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Rule;
            fn from_str(s: &str) -> Result<Self, Rule> {
                Self::parse(s)
            }
        }

        // Values read back from disk go through the same parser as values
        // from a caller: a hand-edited file cannot smuggle in what argv could not.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_type!(
    /// A machine's name: a lowercase DNS label that starts with a letter
    /// (so `xl` can never mistake it for a numeric domain id). It names
    /// files, so it can never be `.`, `..` or hold a `/`.
    VmName,
    |s| {
        if is_label(s) && s.as_bytes()[0].is_ascii_lowercase() {
            Ok(())
        } else {
            Err(Rule("must be 1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"))
        }
    }
);

string_type!(
    /// A guest's host name (one DNS label, RFC 1123).
    Hostname,
    |s| {
        if is_label(s) {
            Ok(())
        } else {
            Err(Rule("must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"))
        }
    }
);

string_type!(
    /// A DNS domain: dot-separated labels, no trailing dot.
    DomainName,
    |s| {
        if !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label) {
            Ok(())
        } else {
            Err(Rule("must be DNS labels (a-z, 0-9, '-') joined by dots, at most 253 characters"))
        }
    }
);

string_type!(
    /// The name of an imported installer image; it names a directory.
    ImageName,
    |s| {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
            && !s.contains("..");
        if ok {
            Ok(())
        } else {
            Err(Rule("must be 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit, without '..'"))
        }
    }
);

string_type!(
    /// A golden template's name; it names a directory (same rule as an image name).
    TemplateName,
    |s| ImageName::parse(s).map(|_| ())
);

string_type!(
    /// A Kerberos principal, `name[/instance]@REALM`.
    Principal,
    |s| {
        let comp = |c: &str| {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        let ok = s.len() <= 256
            && match s.split_once('@') {
                Some((name, realm)) => {
                    comp(realm)
                        && !realm.contains('@')
                        && match name.split_once('/') {
                            Some((primary, instance)) => comp(primary) && comp(instance),
                            None => comp(name),
                        }
                }
                None => false,
            };
        if ok {
            Ok(())
        } else {
            Err(Rule("must be name[/instance]@REALM, each part of letters, digits, '.', '_' and '-'"))
        }
    }
);

fn is_safe_abs_path(s: &str) -> bool {
    s.len() <= 255
        && s.len() > 1
        && s.starts_with('/')
        && s[1..].split('/').all(|c| {
            !c.is_empty() && c != "." && c != ".." && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        })
}

string_type!(
    /// An absolute, canonical path to a VM's volume: no `.` or `..`
    /// components, no empty components, a conservative character set.
    DiskPath,
    |s| {
        if is_safe_abs_path(s) {
            Ok(())
        } else {
            Err(Rule("must be an absolute path without '.', '..' or '//', of letters, digits, '.', '_', '+', '-' and '/'"))
        }
    }
);

string_type!(
    /// A file's path inside an installer image, as the boot loader sees it
    /// (`/install.amd/vmlinuz`).
    CdPath,
    |s| {
        if is_safe_abs_path(s) {
            Ok(())
        } else {
            Err(Rule("must be an absolute path inside the image without '.' or '..'"))
        }
    }
);

impl CdPath {
    /// The same path relative to the image's root, for joining to a tree.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }
}

/// How a volume's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    /// The name qemu and xl use.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

impl DiskPath {
    /// A file named `*.qcow2` is a qcow2 image; every other volume (a
    /// block device, a raw file) is raw.
    pub fn format(&self) -> DiskFormat {
        if self.0.ends_with(".qcow2") {
            DiskFormat::Qcow2
        } else {
            DiskFormat::Raw
        }
    }

    /// True if this path lies under `root` (itself a canonical DiskPath).
    pub fn is_under(&self, root: &DiskPath) -> bool {
        self.0
            .strip_prefix(root.as_str())
            .is_some_and(|rest| rest.starts_with('/') || root.as_str() == "/")
    }
}

string_type!(
    /// A SHA-256 digest as 64 lowercase hex digits.
    Sha256Hex,
    |s| {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(())
        } else {
            Err(Rule("must be 64 lowercase hexadecimal digits"))
        }
    }
);

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

/// A bounded decimal integer; `MIN..=MAX` is part of the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        const RULE: Rule = Rule("must be a decimal number in the allowed range (see `guest-installer help`)");
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
            return Err(RULE);
        }
        let v: u64 = s.parse().map_err(|_| RULE)?;
        Self::try_from(v).map_err(|_| RULE)
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<u64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if (MIN..=MAX).contains(&v) {
            Ok(Bounded(v))
        } else {
            Err(format!("must be between {MIN} and {MAX}"))
        }
    }
}

impl<const MIN: u64, const MAX: u64> From<Bounded<MIN, MAX>> for u64 {
    fn from(b: Bounded<MIN, MAX>) -> u64 {
        b.0
    }
}

impl<const MIN: u64, const MAX: u64> fmt::Display for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Guest memory in MiB. Below ~320 MiB d-i stops at a critical
/// "insufficient memory" error, so 384 is the least we accept.
pub type MemoryMib = Bounded<384, 1_048_576>;
pub type Vcpus = Bounded<1, 128>;

/// How the installer boots: from the per-VM ISO (HVM, any image), or a
/// kernel plus per-VM initrd with no ISO at all (Xen PV, or qemu's
/// `-kernel/-initrd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Boot {
    #[default]
    #[serde(rename = "hvm-iso")]
    HvmIso,
    #[serde(rename = "pv-initrd")]
    PvInitrd,
}

impl Boot {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        match s {
            "hvm-iso" => Ok(Boot::HvmIso),
            "pv-initrd" => Ok(Boot::PvInitrd),
            _ => Err(Rule("must be hvm-iso or pv-initrd")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Boot::HvmIso => "hvm-iso",
            Boot::PvInitrd => "pv-initrd",
        }
    }
}

/// The size of a volume the program creates (`size=20G`): a whole number
/// of MiB (`M`), GiB (`G`) or TiB (`T`), from 64 MiB to 64 TiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSize(u64);

impl VolumeSize {
    pub const MIN: u64 = 64 << 20;
    pub const MAX: u64 = 64 << 40;

    pub fn parse(s: &str) -> Result<Self, Rule> {
        const RULE: Rule = Rule("must be a whole number followed by M, G or T (MiB, GiB, TiB), from 64M to 64T, e.g. 20G");
        let (digits, shift) = match s.as_bytes().last() {
            Some(b'M') => (&s[..s.len() - 1], 20),
            Some(b'G') => (&s[..s.len() - 1], 30),
            Some(b'T') => (&s[..s.len() - 1], 40),
            _ => return Err(RULE),
        };
        if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
            return Err(RULE);
        }
        let n: u64 = digits.parse().map_err(|_| RULE)?;
        let bytes = n.checked_shl(shift).filter(|b| (Self::MIN..=Self::MAX).contains(b) && b >> shift == n).ok_or(RULE)?;
        Ok(VolumeSize(bytes))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn mib(self) -> u64 {
        self.0 >> 20
    }
}

#[cfg(test)]
mod volume_size_tests {
    use super::*;

    #[test]
    fn sizes_parse_in_whole_units_within_bounds() {
        assert_eq!(VolumeSize::parse("20G").unwrap().bytes(), 20 << 30);
        assert_eq!(VolumeSize::parse("64M").unwrap().bytes(), 64 << 20);
        assert_eq!(VolumeSize::parse("64T").unwrap().mib(), 64 << 20);
        for bad in ["", "G", "20", "20g", "20GB", "020G", "63M", "65T", "-1G", "1.5G", "99999999T", " 20G", "20 G"] {
            assert!(VolumeSize::parse(bad).is_err(), "{bad:?}");
        }
    }
}
