//! The environment Ganeti gives an OS definition's scripts
//! (`ganeti-os-interface(7)`, OS API 20), parsed into our types exactly
//! as argv is: every variable we use is validated, every OS parameter
//! must be one we declare, and no message ever echoes a value (an OS
//! parameter may be the root password hash).

use crate::rootlogin::{RootLogin, RootLoginError, MAX_KEYS};
use crate::secret::{CryptHash, RootPassword};
use crate::sshkey::PublicKey;
use crate::types::{parse_ipv4, parse_ipv6, DiskPath, DomainName, Hostname, Mac, Netmask, Network, NetworkFields, Rule, TemplateName, DHCP};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The OS parameters we declare (`parameters.list`), with their help.
pub const PARAMETERS: &[(&str, &str)] = &[
    ("root_hash", "root password as a crypt hash ($6$ or $y$); pass it with --os-parameters-private or --os-parameters-secret, never -O"),
    ("netmask", "IPv4 netmask of NIC 0, e.g. 255.255.255.0 (ignored when the NIC is on a Ganeti network with a subnet)"),
    ("gateway", "IPv4 default gateway (ignored when the NIC's Ganeti network has a gateway)"),
    ("nameservers", "one to three name servers (IPv4, or IPv6 when NIC 0 has IPv6), separated by spaces; not used with DHCP"),
    ("ssh_keys", "SSH public keys for root's authorized_keys, separated by semicolons (TYPE BASE64 [COMMENT];...), or none; with keys, root_hash may be left out (root's password is then locked)"),
];

/// What separates keys in `ssh_keys`: no key line can hold it.
pub const KEY_SEPARATOR: char = ';';
/// `ssh_keys` for no key at all.
pub const NO_KEYS: &str = "none";

/// The OS API version we implement.
pub const API_VERSION: &str = "20";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("{var} is not set: {hint}")]
    Missing { var: &'static str, hint: &'static str },
    #[error("{var} {rule}")]
    Bad { var: String, rule: String },
    #[error(
        "OS parameter {name} is not set: {hint} (Ganeti keeps no secret OS parameter, and a reinstall empties the \
         stored ones, so the next reinstall gets none: pass them all again with each reinstall, -O \
         'netmask=MASK,gateway=ADDRESS,nameservers=ADDRESS ...' and --os-parameters-secret root_hash=HASH or \
         --os-parameters-private root_hash=HASH)"
    )]
    MissingParam { name: &'static str, hint: &'static str },
    #[error("unknown OS parameter {0} (this OS definition takes: root_hash, netmask, gateway, nameservers, ssh_keys)")]
    UnknownParameter(String),
    #[error(
        "no root_hash and no ssh_keys, so nobody could log in: Ganeti keeps no secret OS parameter, and a reinstall \
         empties the stored ones, so the next reinstall gets none; pass them all again with each reinstall: \
         --os-parameters-secret root_hash=HASH (or --os-parameters-private root_hash=HASH) and -O \
         'netmask=MASK,gateway=ADDRESS,nameservers=ADDRESS ...'"
    )]
    NoRootHash,
}

/// An OS parameter's name as Ganeti passed it, if it is plain enough to
/// print (a log or an error shows no stranger text).
fn plain_name(name: &str) -> Option<&str> {
    (name.len() <= 40 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')).then_some(name)
}

fn bad(var: &str, rule: impl Into<String>) -> EnvError {
    EnvError::Bad { var: var.to_owned(), rule: rule.into() }
}

/// The process environment, as text. A value that is not UTF-8 is kept
/// as unreadable: using it is an error, ignoring it is not.
pub struct Vars(BTreeMap<String, Option<String>>);

impl Vars {
    pub fn from_env() -> Self {
        Self::from_pairs(std::env::vars_os())
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        Vars(pairs.into_iter().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()))).collect())
    }

    pub fn get(&self, var: &str) -> Result<Option<&str>, EnvError> {
        match self.0.get(var) {
            None => Ok(None),
            Some(None) => Err(bad(var, "is not UTF-8 text")),
            Some(Some(v)) if v.chars().any(char::is_control) => Err(bad(var, "holds a control character")),
            Some(Some(v)) => Ok(Some(v)),
        }
    }

    pub fn require(&self, var: &'static str, hint: &'static str) -> Result<&str, EnvError> {
        self.get(var)?.ok_or(EnvError::Missing { var, hint })
    }

    fn parsed<T>(&self, var: &'static str, hint: &'static str, parse: impl Fn(&str) -> Result<T, Rule>) -> Result<T, EnvError> {
        parse(self.require(var, hint)?).map_err(|r| bad(var, r.0))
    }

    /// `DEBUG_LEVEL` (0 when unset): above 0, the operation says on
    /// standard error what it was given and what it does.
    pub fn debug_level(&self) -> Result<u8, EnvError> {
        match self.get("DEBUG_LEVEL")? {
            None | Some("") => Ok(0),
            Some(v) => v.parse().map_err(|_| bad("DEBUG_LEVEL", "must be a number from 0 to 255")),
        }
    }

    /// What Ganeti passed, for a debug log: the instance, disk and NIC
    /// variables with their values, OS parameters by name only (a
    /// root_hash is a secret, and keys are long), nothing else of the
    /// environment (noded's own variables are not ours to log).
    pub fn debug_lines(&self) -> Vec<String> {
        const SHOWN: &[&str] = &["OS_API_VERSION", "OS_NAME", "OS_VARIANT", "INSTANCE_NAME", "OLD_INSTANCE_NAME", "INSTANCE_REINSTALL", "HYPERVISOR", "DISK_COUNT", "NIC_COUNT"];
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            let listed = SHOWN.contains(&k.as_str()) || k.starts_with("DISK_") || k.starts_with("NIC_");
            if listed {
                // Values are shown cleaned: a control character is never printed.
                let v = v.as_deref().map(|v| if v.chars().any(char::is_control) { "(holds a control character)" } else { v }).unwrap_or("(not UTF-8)");
                out.push(format!("{k}={v}"));
            } else if let Some(name) = k.strip_prefix("OSP_").and_then(plain_name) {
                out.push(format!("OS parameter {} given", name.to_ascii_lowercase()));
            }
        }
        out
    }

    /// `OSP_*` variables, lowercased names to values.
    fn os_params(&self) -> Result<BTreeMap<String, &str>, EnvError> {
        let mut out = BTreeMap::new();
        for k in self.0.keys() {
            if let Some(name) = k.strip_prefix("OSP_") {
                let name = name.to_ascii_lowercase();
                if !PARAMETERS.iter().any(|(p, _)| *p == name) {
                    // An admin's typo, not a caller's: still shown only if plain.
                    return Err(EnvError::UnknownParameter(plain_name(&name).unwrap_or("(unprintable)").to_owned()));
                }
                out.insert(name, self.get(k)?.unwrap_or_default());
            }
        }
        Ok(out)
    }
}

/// Our OS parameters, each checked on its own (`verify parameters`);
/// whether they fit the NIC's address is checked by `create`.
#[derive(Debug, Default)]
pub struct OsParams {
    pub root_hash: Option<CryptHash>,
    pub netmask: Option<Netmask>,
    pub gateway: Option<Ipv4Addr>,
    pub nameservers: Option<Vec<IpAddr>>,
    pub ssh_keys: Option<Vec<PublicKey>>,
}

impl OsParams {
    pub fn parse(vars: &Vars) -> Result<Self, EnvError> {
        let mut p = OsParams::default();
        for (name, value) in vars.os_params()? {
            let var = format!("OS parameter {name}");
            if value.is_empty() {
                return Err(bad(&var, "is empty"));
            }
            match name.as_str() {
                // A hash only: a cleartext password would sit in Ganeti's config.
                "root_hash" => {
                    p.root_hash = Some(CryptHash::parse_hash(value).map_err(|_| {
                        bad(&var, "is not a well-formed crypt hash ($6$... SHA-512 or $y$... yescrypt); make one with `mkpasswd -m sha-512`")
                    })?)
                }
                "netmask" => p.netmask = Some(Netmask::parse(value).map_err(|r| bad(&var, r.0))?),
                "gateway" => p.gateway = Some(parse_ipv4(value).map_err(|r| bad(&var, r.0))?),
                "nameservers" => {
                    let one = |s: &str| parse_ipv4(s).map(IpAddr::V4).or_else(|_| parse_ipv6(s).map(IpAddr::V6));
                    let ns = value.split(' ').filter(|s| !s.is_empty()).map(one).collect::<Result<Vec<_>, _>>().map_err(|r| bad(&var, r.0))?;
                    if ns.is_empty() || ns.len() > crate::types::MAX_NAMESERVERS {
                        return Err(bad(&var, "must list one to three addresses, separated by spaces"));
                    }
                    p.nameservers = Some(ns);
                }
                "ssh_keys" => p.ssh_keys = Some(parse_keys(value).map_err(|r| bad(&var, r))?),
                _ => unreachable!("os_params returns declared names only"),
            }
        }
        Ok(p)
    }
}

/// `ssh_keys`: keys separated by [`KEY_SEPARATOR`] (spaces around each
/// are dropped), each a valid key, at most [`MAX_KEYS`]; or `none`. The
/// message says which key (by position) is wrong, never what it holds.
pub fn parse_keys(value: &str) -> Result<Vec<PublicKey>, String> {
    if value == NO_KEYS {
        return Ok(Vec::new());
    }
    let keys: Vec<&str> = value.split(KEY_SEPARATOR).map(|k| k.trim_matches(' ')).filter(|k| !k.is_empty()).collect();
    if keys.is_empty() {
        return Err("holds no key".into());
    }
    if keys.len() > MAX_KEYS {
        return Err(format!("holds more than {MAX_KEYS} keys"));
    }
    keys.iter()
        .enumerate()
        .map(|(i, k)| PublicKey::parse_line(k).map_err(|e| format!("key {} {e}", i + 1)))
        .collect()
}

/// `ssh_keys` as cluster mode passes it: always, `none` for no key.
/// Ganeti merges a reinstall's OS parameters over those it stored at the
/// create, so a parameter left out could bring back the old keys.
pub fn join_keys(keys: &[PublicKey]) -> String {
    if keys.is_empty() {
        return NO_KEYS.to_owned();
    }
    keys.iter().map(PublicKey::line).collect::<Vec<_>>().join(&KEY_SEPARATOR.to_string())
}

/// An instance's name as Ganeti gives it (a fully qualified name, or a
/// short one): the guest's host name is its first label, its domain the
/// rest (or the configured domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceName {
    pub host: Hostname,
    pub domain: Option<DomainName>,
}

impl InstanceName {
    pub fn parse(s: &str) -> Result<Self, Rule> {
        const RULE: Rule = Rule("must be a DNS name (labels of a-z, 0-9 and '-', joined by dots)");
        let s = s.to_ascii_lowercase();
        let (host, domain) = match s.split_once('.') {
            Some((h, d)) => (h, Some(DomainName::parse(d).map_err(|_| RULE)?)),
            None => (s.as_str(), None),
        };
        Ok(InstanceName { host: Hostname::parse(host).map_err(|_| RULE)?, domain })
    }

    pub fn domain_or<'a>(&'a self, default: &'a DomainName) -> &'a DomainName {
        self.domain.as_ref().unwrap_or(default)
    }
}

/// What every script but `verify` needs: the API version, the variant and
/// the instance.
fn common(vars: &Vars) -> Result<(), EnvError> {
    let v = vars.require("OS_API_VERSION", "run this only as a Ganeti OS definition script")?;
    if v != API_VERSION {
        return Err(bad("OS_API_VERSION", format!("is not {API_VERSION}, the OS API this definition implements")));
    }
    Ok(())
}

fn variant(vars: &Vars) -> Result<TemplateName, EnvError> {
    vars.parsed("OS_VARIANT", "choose a golden template as the variant: -o guest-installer+TEMPLATE (see `gnt-os list`)", TemplateName::parse)
}

fn disk0(vars: &Vars, var: &'static str) -> Result<DiskPath, EnvError> {
    let n: u32 = vars.parsed("DISK_COUNT", "the instance needs a disk", |s| s.parse().map_err(|_| Rule("is not a number")))?;
    if n == 0 {
        return Err(bad("DISK_COUNT", "is 0: the instance needs a disk to clone the template onto"));
    }
    vars.parsed(var, "disk 0 has no local path (a userspace-only disk is not supported)", DiskPath::parse)
}

/// What `create` needs.
#[derive(Debug)]
pub struct Create {
    pub variant: TemplateName,
    pub instance: InstanceName,
    pub disk: DiskPath,
    pub mac: Mac,
    pub network: Network,
    /// The keys and password of the OS parameters.
    pub root: RootLogin,
    pub reinstall: bool,
}

impl Create {
    pub fn parse(vars: &Vars) -> Result<Self, EnvError> {
        common(vars)?;
        let OsParams { root_hash, netmask, gateway, nameservers, ssh_keys } = OsParams::parse(vars)?;
        // First: after a reinstall Ganeti passes none of them, and this
        // message says to pass them all. Keys alone will do (root locked).
        let password = root_hash.map(RootPassword::Hash).unwrap_or(RootPassword::Locked);
        let root = RootLogin::new(ssh_keys.unwrap_or_default(), password).map_err(|e| match e {
            RootLoginError::NoWayIn => EnvError::NoRootHash,
            e => bad("OS parameter ssh_keys", e.to_string()),
        })?;
        let variant = variant(vars)?;
        let instance = vars.parsed("INSTANCE_NAME", "run this only as a Ganeti OS definition script", InstanceName::parse)?;
        let disk = disk0(vars, "DISK_0_PATH")?;
        let nics: u32 = vars.parsed("NIC_COUNT", "the instance needs a NIC", |s| s.parse().map_err(|_| Rule("is not a number")))?;
        if nics == 0 {
            return Err(bad("NIC_COUNT", "is 0: the instance needs a NIC (--net 0:ip=ADDRESS, or --net 0 for DHCP)"));
        }
        let mac = vars.parsed("NIC_0_MAC", "NIC 0 has no MAC address", Mac::parse)?;
        let network = nic_network(vars, mac, netmask, gateway, nameservers)?;
        let reinstall = vars.get("INSTANCE_REINSTALL")? == Some("1");
        Ok(Create { variant, instance, disk, mac, network, root, reinstall })
    }
}

/// NIC 0's network. A static IPv4 address when it has one (NIC_0_IP,
/// with the netmask and gateway of its Ganeti network or of the OS
/// parameters); IPv6 when its Ganeti network has an IPv6 subnet: the
/// EUI-64 address from the NIC's MAC in that /64 (the address Ganeti
/// itself derives), by the network's IPv6 gateway; both when it has
/// both. With neither, DHCP: the site's DHCP server knows the MAC, and
/// the address parameters are not used.
fn nic_network(vars: &Vars, mac: Mac, netmask: Option<Netmask>, gateway: Option<Ipv4Addr>, nameservers: Option<Vec<IpAddr>>) -> Result<Network, EnvError> {
    let ip = vars.get("NIC_0_IP")?.filter(|s| !s.is_empty());
    let subnet6 = vars.get("NIC_0_NETWORK_SUBNET6")?.filter(|s| !s.is_empty());
    if ip.is_none() && subnet6.is_none() {
        return Network::from_fields(&NetworkFields { ip: Some(DHCP), ..Default::default() }).map_err(|e| bad("the network", e.to_string()));
    }
    let v4 = match ip {
        Some(_) => {
            // A Ganeti network gives the subnet and perhaps the gateway;
            // the OS parameters fill in what it does not.
            let netmask = match vars.get("NIC_0_NETWORK_SUBNET")? {
                Some(subnet) => prefix_netmask(subnet).map_err(|r| bad("NIC_0_NETWORK_SUBNET", r.0))?,
                None => netmask.ok_or(EnvError::MissingParam { name: "netmask", hint: "NIC 0 is on no Ganeti network with a subnet" })?,
            };
            let gateway = match vars.get("NIC_0_NETWORK_GATEWAY")?.filter(|g| !g.is_empty()) {
                Some(g) => parse_ipv4(g).map_err(|r| bad("NIC_0_NETWORK_GATEWAY", r.0))?,
                None => gateway.ok_or(EnvError::MissingParam { name: "gateway", hint: "NIC 0 is on no Ganeti network with a gateway" })?,
            };
            Some((netmask.to_string(), gateway.to_string()))
        }
        None => None,
    };
    let v6 = match subnet6 {
        Some(subnet) => {
            let addr = eui64_in(subnet, mac).map_err(|r| bad("NIC_0_NETWORK_SUBNET6", r.0))?;
            let gw = vars.require("NIC_0_NETWORK_GATEWAY6", "NIC 0's Ganeti network has an IPv6 subnet but no IPv6 gateway (gnt-network add --gateway6)")?;
            Some((format!("{addr}/64"), gw.to_owned()))
        }
        None => None,
    };
    let ns = nameservers.ok_or(EnvError::MissingParam { name: "nameservers", hint: "give one to three, separated by spaces (Ganeti splits -O on commas)" })?;
    let ns: Vec<String> = ns.iter().map(IpAddr::to_string).collect();
    let ns: Vec<&str> = ns.iter().map(String::as_str).collect();
    Network::from_fields(&NetworkFields {
        ip,
        netmask: v4.as_ref().map(|v| v.0.as_str()),
        gateway: v4.as_ref().map(|v| v.1.as_str()),
        ip6: v6.as_ref().map(|v| v.0.as_str()),
        gateway6: v6.as_ref().map(|v| v.1.as_str()),
        nameservers: &ns,
    })
    .map_err(|e| {
        let var = match e.field {
            "ip" => "NIC_0_IP",
            "ip6" => "NIC_0_NETWORK_SUBNET6",
            "gateway6" => "NIC_0_NETWORK_GATEWAY6",
            "nameserver" => "OS parameter nameservers",
            _ => "the network (NIC_0_IP, netmask, gateway)",
        };
        bad(var, format!("{}: {}", e.field, e.rule))
    })
}

/// The EUI-64 address of `mac` in the /64 `subnet` (`2001:db8:1::/64`):
/// the MAC's bytes around ff:fe, its universal/local bit flipped.
fn eui64_in(subnet: &str, mac: Mac) -> Result<Ipv6Addr, Rule> {
    const RULE: Rule = Rule("must be an IPv6 /64 such as 2001:db8:1::/64 (the instance's address is its MAC's EUI-64 in it)");
    let (net, len) = subnet.split_once('/').ok_or(RULE)?;
    let net = parse_ipv6(net).map_err(|_| RULE)?;
    if len != "64" || u128::from(net) & u128::from(u64::MAX) != 0 {
        return Err(RULE);
    }
    let m = mac.octets();
    let iid = u64::from_be_bytes([m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    Ok(Ipv6Addr::from(u128::from(net) | u128::from(iid)))
}

/// `198.51.100.0/24` → 255.255.255.0.
fn prefix_netmask(subnet: &str) -> Result<Netmask, Rule> {
    const RULE: Rule = Rule("must be an IPv4 subnet such as 198.51.100.0/24");
    let (net, len) = subnet.split_once('/').ok_or(RULE)?;
    parse_ipv4(net).map_err(|_| RULE)?;
    let len: u32 = if len.len() <= 2 && len.bytes().all(|b| b.is_ascii_digit()) { len.parse().map_err(|_| RULE)? } else { return Err(RULE) };
    if !(1..=32).contains(&len) {
        return Err(RULE);
    }
    Netmask::parse(&Ipv4Addr::from(u32::MAX << (32 - len)).to_string())
}

/// What `rename` needs.
#[derive(Debug)]
pub struct Rename {
    pub old: InstanceName,
    pub new: InstanceName,
    pub disk: DiskPath,
}

impl Rename {
    pub fn parse(vars: &Vars) -> Result<Self, EnvError> {
        common(vars)?;
        let new = vars.parsed("INSTANCE_NAME", "run this only as a Ganeti OS definition script", InstanceName::parse)?;
        let old = vars.parsed("OLD_INSTANCE_NAME", "run this only as Ganeti's rename script", InstanceName::parse)?;
        Ok(Rename { old, new, disk: disk0(vars, "DISK_0_PATH")? })
    }
}

/// What `export` and `import` need: the one disk they stream.
#[derive(Debug)]
pub struct Transfer {
    pub disk: DiskPath,
    /// `EXP_SIZE_FD`: where export may say how many bytes it will write.
    pub size_fd: Option<i32>,
}

impl Transfer {
    pub fn parse(vars: &Vars, export: bool) -> Result<Self, EnvError> {
        common(vars)?;
        let (var, hint) = if export {
            ("EXPORT_DEVICE", "run this only as Ganeti's export script")
        } else {
            ("IMPORT_DEVICE", "run this only as Ganeti's import script")
        };
        let disk = vars.parsed(var, hint, DiskPath::parse)?;
        let size_fd = if export {
            vars.get("EXP_SIZE_FD")?
                .map(|s| match s.parse::<i32>() {
                    Ok(fd) if fd > 2 && s.len() <= 4 && !s.starts_with('0') => Ok(fd),
                    _ => Err(bad("EXP_SIZE_FD", "is not a file descriptor number above 2")),
                })
                .transpose()?
        } else {
            None
        };
        Ok(Transfer { disk, size_fd })
    }
}

/// `verify parameters`: the parameters, each on its own.
pub fn verify(vars: &Vars) -> Result<OsParams, EnvError> {
    common(vars)?;
    OsParams::parse(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0";

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))))
    }

    fn create_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("OS_API_VERSION", "20"),
            ("OS_VARIANT", "bookworm"),
            ("INSTANCE_NAME", "web1.ganeti.test"),
            ("DISK_COUNT", "1"),
            ("DISK_0_PATH", "/srv/ganeti/file-storage/web1.ganeti.test/0a1b.file.disk0"),
            ("NIC_COUNT", "1"),
            ("NIC_0_MAC", "aa:00:00:12:34:56"),
            ("NIC_0_IP", "198.51.100.21"),
            ("OSP_NETMASK", "255.255.255.0"),
            ("OSP_GATEWAY", "198.51.100.1"),
            ("OSP_NAMESERVERS", "198.51.100.53 198.51.100.54"),
            ("OSP_ROOT_HASH", HASH),
        ]
    }

    fn with(base: &[(&'static str, &'static str)], set: &[(&'static str, &'static str)], unset: &[&str]) -> Vars {
        let mut v: Vec<(&str, &str)> = base.iter().filter(|(k, _)| !unset.contains(k) && !set.iter().any(|(s, _)| s == k)).copied().collect();
        v.extend_from_slice(set);
        vars(&v)
    }

    #[test]
    fn a_debug_log_shows_what_ganeti_passed_but_no_parameter_value() {
        let v = with(&create_env(), &[("DEBUG_LEVEL", "1"), ("PATH", "/usr/bin"), ("NIC_0_NAME", "a\u{1b}[2J")], &[]);
        assert_eq!(v.debug_level(), Ok(1));
        let lines = v.debug_lines();
        for shown in ["INSTANCE_NAME=web1.ganeti.test", "NIC_0_IP=198.51.100.21", "OS parameter root_hash given", "OS parameter netmask given", "NIC_0_NAME=(holds a control character)"] {
            assert!(lines.iter().any(|l| l == shown), "{shown} not in {lines:?}");
        }
        let all = lines.join("\n");
        assert!(!all.contains("$6$") && !all.contains("255.255.255.0") && !lines.iter().any(|l| l.starts_with("PATH=")) && !all.contains('\u{1b}'), "{all}");
        assert_eq!(with(&create_env(), &[], &[]).debug_level(), Ok(0));
        assert!(with(&create_env(), &[("DEBUG_LEVEL", "yes")], &[]).debug_level().is_err());
    }

    #[test]
    fn create_reads_every_value_into_its_type() {
        let c = Create::parse(&vars(&create_env())).unwrap();
        assert_eq!(c.instance.host.as_str(), "web1");
        assert_eq!(c.instance.domain.as_ref().unwrap().as_str(), "ganeti.test");
        assert_eq!(c.network.v4().unwrap().netmask().prefix_len(), 24);
        assert_eq!(c.network.nameservers().len(), 2);
        assert_eq!(c.mac.to_string(), "aa:00:00:12:34:56");
        assert!(!c.reinstall);
        // A Ganeti network's subnet and gateway win over the parameters.
        let c = Create::parse(&with(&create_env(), &[("NIC_0_NETWORK_SUBNET", "198.51.100.0/25"), ("NIC_0_NETWORK_GATEWAY", "198.51.100.2")], &["OSP_NETMASK", "OSP_GATEWAY"]))
            .unwrap();
        assert_eq!((c.network.v4().unwrap().netmask().prefix_len(), c.network.v4().unwrap().gateway().to_string().as_str()), (25, "198.51.100.2"));
    }

    #[test]
    fn a_nic_without_an_address_gets_dhcp_and_an_ipv6_subnet_its_eui64_address() {
        // No address: DHCP, whatever address parameters are set.
        let c = Create::parse(&with(&create_env(), &[], &["NIC_0_IP"])).unwrap();
        assert!(c.network.is_dhcp() && c.network.nameservers().is_empty());
        // An IPv6 subnet: the MAC's EUI-64 in it, beside the IPv4 address.
        let v6 = [("NIC_0_NETWORK_SUBNET6", "2001:db8:1::/64"), ("NIC_0_NETWORK_GATEWAY6", "fe80::1")];
        let c = Create::parse(&with(&create_env(), &v6, &[])).unwrap();
        assert_eq!(c.network.describe(), "198.51.100.21/24 via 198.51.100.1, 2001:db8:1:0:a800:ff:fe12:3456/64 via fe80::1");
        // IPv6 alone, with an IPv6 name server.
        let c = Create::parse(&with(&create_env(), &[v6[0], v6[1], ("OSP_NAMESERVERS", "2001:db8:1::53")], &["NIC_0_IP"])).unwrap();
        assert!(c.network.v4().is_none() && c.network.v6().is_some());
    }

    #[test]
    fn create_refuses_bad_and_missing_values_without_echoing_them() {
        let cases: Vec<(Vars, &str)> = vec![
            (with(&create_env(), &[], &["OSP_ROOT_HASH"]), "--os-parameters-secret"),
            (with(&create_env(), &[("OSP_ROOT_HASH", "hunter2")], &[]), "crypt hash"),
            (with(&create_env(), &[("OSP_NETMASK", "255.0.255.0")], &[]), "netmask"),
            (with(&create_env(), &[("OSP_GATEWAY", "203.0.113.1")], &[]), "gateway"),
            (with(&create_env(), &[("OSP_NAMESERVERS", "1.1.1.1,8.8.8.8")], &[]), "nameservers"),
            (with(&create_env(), &[("OSP_DHCP", "yes")], &[]), "unknown OS parameter dhcp"),
            (with(&create_env(), &[("INSTANCE_NAME", "web1;reboot")], &[]), "INSTANCE_NAME"),
            (with(&create_env(), &[("OS_VARIANT", "../etc")], &[]), "OS_VARIANT"),
            (with(&create_env(), &[], &["OS_VARIANT"]), "guest-installer+TEMPLATE"),
            (with(&create_env(), &[("DISK_0_PATH", "/srv/x/../y")], &[]), "DISK_0_PATH"),
            (with(&create_env(), &[("NIC_0_MAC", "01:00:00:00:00:01")], &[]), "NIC_0_MAC"),
            (with(&create_env(), &[("NIC_0_NETWORK_SUBNET6", "2001:db8:1::/48"), ("NIC_0_NETWORK_GATEWAY6", "fe80::1")], &[]), "NIC_0_NETWORK_SUBNET6"),
            (with(&create_env(), &[("NIC_0_NETWORK_SUBNET6", "2001:db8:1::/64")], &[]), "NIC_0_NETWORK_GATEWAY6"),
            (with(&create_env(), &[("NIC_0_NETWORK_SUBNET6", "2001:db8:1::/64"), ("NIC_0_NETWORK_GATEWAY6", "2001:db8:2::1")], &[]), "NIC_0_NETWORK_GATEWAY6"),
            (with(&create_env(), &[("NIC_0_NETWORK_SUBNET6", "2001:db8:1::/64"), ("NIC_0_NETWORK_GATEWAY6", "fe80::1")], &["NIC_0_IP"]), "nameservers"),
            (with(&create_env(), &[("NIC_0_IP", "198.51.100.255")], &[]), "NIC_0_IP"),
            (with(&create_env(), &[("OS_API_VERSION", "15")], &[]), "OS_API_VERSION"),
            (with(&create_env(), &[("DISK_COUNT", "0")], &[]), "DISK_COUNT"),
            (with(&create_env(), &[("INSTANCE_NAME", "web1\n.x")], &[]), "control character"),
        ];
        for (v, want) in cases {
            let e = Create::parse(&v).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
            assert!(!e.contains("3rj1vTLX") && !e.contains("hunter2"), "a value was echoed: {e}");
        }
    }

    /// `with`, for values that are not `'static`.
    fn with_values<'a>(set: &[(&'a str, &'a str)], unset: &[&str]) -> Vars {
        let mut v: Vec<(&'a str, &'a str)> =
            create_env().into_iter().filter(|(k, _)| !unset.contains(k) && !set.iter().any(|(s, _)| s == k)).collect();
        v.extend_from_slice(set);
        vars(&v)
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH+2i5AKkiRgfmm31jnpzTRX9C1c7OzuKqgSZ7WAoSvs bob@laptop (a, b)";

    #[test]
    fn ssh_keys_go_with_or_without_a_root_hash_but_never_neither() {
        let two = format!("{KEY}; {KEY}");
        let c = Create::parse(&with_values(&[("OSP_SSH_KEYS", &two)], &["OSP_ROOT_HASH"])).unwrap();
        assert_eq!((c.root.keys().len(), c.root.console_password(), c.root.ssh_password()), (2, false, false));
        let c = Create::parse(&with(&create_env(), &[("OSP_SSH_KEYS", KEY)], &[])).unwrap();
        assert_eq!((c.root.keys().len(), c.root.console_password(), c.root.ssh_password()), (1, true, false));
        // A password alone: sshd takes it for root.
        let c = Create::parse(&with(&create_env(), &[("OSP_SSH_KEYS", NO_KEYS)], &[])).unwrap();
        assert_eq!((c.root.keys().len(), c.root.ssh_password()), (0, true));
        assert_eq!(Create::parse(&with(&create_env(), &[("OSP_SSH_KEYS", NO_KEYS)], &["OSP_ROOT_HASH"])).unwrap_err(), EnvError::NoRootHash);
        let many = vec![KEY; MAX_KEYS + 1].join(";");
        let hostile = format!("{KEY}\"x");
        for (bad, want) in [(many.as_str(), "more than 32"), (";", "no key"), ("ssh-dss AAAA", "key 1"), (hostile.as_str(), "key 1"), ("command=x ssh-ed25519 AAAA", "key 1")] {
            let e = Create::parse(&with_values(&[("OSP_SSH_KEYS", bad)], &[])).unwrap_err().to_string();
            assert!(e.contains("OS parameter ssh_keys") && e.contains(want), "{bad}: {e}");
            assert!(!e.contains("AAAA"), "a key was echoed: {e}");
        }
        assert_eq!(parse_keys(&join_keys(c.root.keys())).unwrap(), Vec::new());
        let keys = parse_keys(&two).unwrap();
        assert_eq!(parse_keys(&join_keys(&keys)).unwrap(), keys);
    }

    #[test]
    fn verify_checks_each_parameter_and_none_is_required() {
        let base = [("OS_API_VERSION", "20")];
        assert!(verify(&vars(&base)).unwrap().root_hash.is_none());
        for (k, v) in [("OSP_ROOT_HASH", "$6$x$y"), ("OSP_NETMASK", "255.255.255.255"), ("OSP_GATEWAY", "1.2.3"), ("OSP_NAMESERVERS", ""), ("OSP_NAMESERVERS", "1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4"), ("OSP_ROOT", "x")] {
            assert!(verify(&with(&base, &[(k, v)], &[])).is_err(), "{k}={v}");
        }
        assert!(verify(&with(&base, &[("OSP_ROOT_HASH", HASH), ("OSP_NAMESERVERS", " 192.0.2.53  192.0.2.54 ")], &[])).is_ok());
    }

    #[test]
    fn transfer_and_rename() {
        let v = vars(&[("OS_API_VERSION", "20"), ("EXPORT_DEVICE", "/dev/drbd0"), ("EXP_SIZE_FD", "11")]);
        let t = Transfer::parse(&v, true).unwrap();
        assert_eq!((t.disk.as_str(), t.size_fd), ("/dev/drbd0", Some(11)));
        let v = vars(&[("OS_API_VERSION", "20"), ("EXPORT_DEVICE", "/dev/drbd0"), ("EXP_SIZE_FD", "1")]);
        assert!(Transfer::parse(&v, true).is_err());
        let v = vars(&[("OS_API_VERSION", "20"), ("INSTANCE_NAME", "New.Example.org"), ("OLD_INSTANCE_NAME", "old"), ("DISK_COUNT", "1"), ("DISK_0_PATH", "/dev/x")]);
        let r = Rename::parse(&v).unwrap();
        assert_eq!((r.new.host.as_str(), r.old.host.as_str(), r.old.domain.is_none()), ("new", "old", true));
    }
}

#[cfg(test)]
mod package_files {
    /// The packaged parameters.list declares exactly these parameters.
    #[test]
    fn parameters_list_matches() {
        let text = include_str!("../../ganeti/os/parameters.list");
        let want: String = super::PARAMETERS.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        assert_eq!(text, want);
        assert_eq!(include_str!("../../ganeti/os/ganeti_api_version").trim(), super::API_VERSION);
    }
}
