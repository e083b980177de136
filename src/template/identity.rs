//! A clone's identity: the seed its first-boot unit reads, rendered from
//! validated values, and the guest side of it baked into every template.

use crate::guest::Guest;
use crate::secret::RootPassword;
use std::io;

/// The guest side of the identity seed, baked into every template.
pub const IDENTITY_SCRIPT: &str = include_str!("gi-identity");
pub const IDENTITY_UNIT: &str = include_str!("gi-identity.service");
/// First line of a seed; the script refuses anything else. Version 2
/// added how root logs in (`ssh_key`, `ssh_password`, `root_locked`): a
/// template whose unit knows only version 1 refuses these seeds, so such a
/// template is refused on the host (see [`IDENTITY_VERSION`]).
pub const SEED_MAGIC: &str = "guest-installer-identity 2";
/// The first line of a version-1 seed (what old templates' units take).
pub const SEED_MAGIC_V1: &str = "guest-installer-identity 1";
/// Version 3 added IPv6 (`address6`, `prefix6`, `gateway6`, name servers
/// of either family) and DHCP (`dhcp=yes`); the IPv4 lines became
/// optional. It is written only for machines that need it, so templates
/// whose unit takes version 2 keep cloning IPv4 machines.
pub const SEED_MAGIC_V3: &str = "guest-installer-identity 3";
/// The seed version the identity unit baked into new templates takes
/// (it takes versions 2 and 3); a template's manifest records it
/// (`identity_version`, 1 when absent).
pub const IDENTITY_VERSION: u32 = 3;
/// What the identity unit prints on the console when done, or refusing.
pub const APPLIED_LINE: &str = "gi-identity: applied";
pub const REFUSED_LINE: &str = "gi-identity: REFUSED";
/// The seed disk's size (the script reads at most this much of it): room
/// for 32 of the largest keys we accept. (At least 64 KiB: the kernel's
/// partition scan expects more than a few sectors.)
pub const SEED_BYTES: usize = 512 * 1024;

/// What a clone's identity is made of: who the guest is (the values its
/// preseed would get) and its root filesystem's new UUID.
pub struct Identity<'a> {
    pub guest: &'a Guest<'a>,
    /// The clone's new filesystem UUID (lowercase, hyphenated).
    pub fs_uuid: &'a str,
}

/// The seed version a machine with `network` needs: 2 (what templates
/// built before IPv6 and DHCP take) for a static IPv4 network, 3 for the
/// rest.
pub fn seed_version(network: &crate::types::Network) -> u32 {
    match network.addressing() {
        crate::types::Addressing::V4(_) => 2,
        _ => 3,
    }
}

/// The seed text the first-boot unit reads. Every value is a validated
/// type, so none can hold a newline or start another line.
pub fn render_seed(id: &Identity) -> String {
    render_seed_with_mac(id, None)
}

/// The seed, with the MAC of the NIC the address belongs to when the
/// host knows it (the guest then configures that NIC, whatever its name).
pub fn render_seed_with_mac(id: &Identity, mac: Option<crate::types::Mac>) -> String {
    let n = id.guest.network;
    let magic = if seed_version(n) == 2 { SEED_MAGIC } else { SEED_MAGIC_V3 };
    let mut s = format!("{magic}\nhostname={}\ndomain={}\n", id.guest.hostname, id.guest.domain);
    if let Some(a) = n.v4() {
        s.push_str(&format!("address={}\nprefix={}\ngateway={}\n", a.ip(), a.netmask().prefix_len(), a.gateway()));
    }
    if let Some(b) = n.v6() {
        s.push_str(&format!("address6={}\nprefix6={}\ngateway6={}\n", b.addr().addr(), b.addr().prefix_len(), b.gateway()));
    }
    if n.is_dhcp() {
        s.push_str("dhcp=yes\n");
    }
    for ns in n.nameservers() {
        s.push_str(&format!("nameserver={ns}\n"));
    }
    if let Some(mac) = mac {
        s.push_str(&format!("mac={mac}\n"));
    }
    let root = id.guest.root;
    match root.password() {
        RootPassword::Hash(h) => s.push_str(&format!("root_hash={}\n", h.expose())),
        RootPassword::Locked => s.push_str("root_locked=yes\n"),
    }
    // Validated keys: one line each, no newline or quote can be in one.
    for k in root.keys() {
        s.push_str(&format!("ssh_key={}\n", k.line()));
    }
    s.push_str(&format!("ssh_password={}\n", if root.ssh_password() { "yes" } else { "no" }));
    s.push_str(&format!("fs_uuid={}\nend\n", id.fs_uuid));
    s
}

/// The SSH host key fingerprint the identity unit printed (the first one:
/// it comes before any login is possible) in a console log's head.
pub fn host_key_of(head: &str) -> Option<crate::sshkey::Fingerprint> {
    const LINE: &str = "gi-identity: ssh-host-key=";
    let at = head.find(LINE)? + LINE.len();
    let fp: String = head[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || "+/=:".contains(*c)).take(64).collect();
    crate::sshkey::Fingerprint::parse(&fp).ok()
}

/// The seed disk's bytes: the text, zero-padded to a whole number of sectors.
pub fn seed_disk(text: &str) -> Option<Vec<u8>> {
    if text.len() >= SEED_BYTES {
        return None;
    }
    let mut b = text.as_bytes().to_vec();
    b.resize(SEED_BYTES, 0);
    Some(b)
}

/// A random version-4 UUID.
pub fn random_uuid() -> io::Result<String> {
    let mut b: [u8; 16] = crate::secret::random_bytes()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = random_uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_ne!(u, random_uuid().unwrap());
    }
}
