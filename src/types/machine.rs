//! What a machine is given: memory, vCPUs and volume size (numbers with
//! bounds that are part of their types), and how its installer boots.

use super::Rule;
use serde::{Deserialize, Serialize};
use std::fmt;

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
/// of MiB (`M`), GiB (`G`) or TiB (`T`), from 64 MiB to 64 TiB. Stored
/// (the registry) as its bytes, read back through the same bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct VolumeSize(u64);

impl TryFrom<u64> for VolumeSize {
    type Error = String;
    fn try_from(bytes: u64) -> Result<Self, String> {
        if (Self::MIN..=Self::MAX).contains(&bytes) && bytes.is_multiple_of(1 << 20) {
            Ok(VolumeSize(bytes))
        } else {
            Err("a volume size must be whole MiB from 64 MiB to 64 TiB".into())
        }
    }
}
impl From<VolumeSize> for u64 {
    fn from(s: VolumeSize) -> u64 {
        s.0
    }
}

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
