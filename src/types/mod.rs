//! Parse, don't validate: every value that can reach a preseed, a boot
//! config, a domain config, a file name or an argv is one of these types,
//! and a value of these types is always safe to use there. None of them can
//! hold a control character, a space, a quote or a backslash.
//!
//! This module holds what every family shares (the refusal [`Rule`] and the
//! `string_type!` pattern); each family of types lives in its own file.

/// Why a value was refused: the rule it broke, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rule(pub &'static str);

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

mod digest;
mod ipv6;
mod machine;
mod names;
mod netconfig;
mod network;
mod paths;

pub use digest::Sha256Hex;
pub use machine::{Boot, Bounded, MemoryMib, Vcpus, VolumeSize};
pub use names::{DomainName, Hostname, ImageName, KernelVersion, Principal, TemplateName, VmName};
pub use ipv6::{parse_ipv6, Ipv6Cidr};
pub use netconfig::{Addressing, FieldRule, Ipv4Static, Ipv6Static, Network, NetworkFields, DHCP, MAX_NAMESERVERS};
pub use network::{parse_ipv4, Mac, Netmask};
pub use paths::{CdPath, DiskFormat, DiskPath};
