//! Renders a machine's preseed: the admin's static template with every
//! question we answer per VM taken out, then our answers appended. Each
//! answer is built from a typed value that cannot hold a newline or any
//! other control character, so no input can add a line or a directive.

use crate::config::{MirrorDir, MirrorHost};
use crate::secret::CryptHash;
use crate::types::{DomainName, Hostname, Network};

/// Per-VM answers.
pub struct Values<'a> {
    pub hostname: &'a Hostname,
    pub domain: &'a DomainName,
    pub network: &'a Network,
    pub root_hash: &'a CryptHash,
    pub mirror_host: &'a MirrorHost,
    pub mirror_dir: &'a MirrorDir,
}

/// The questions we answer per VM; the template's lines for them are
/// dropped so ours are the only answers.
pub const OWNED_QUESTIONS: &[&str] = &[
    "netcfg/get_hostname",
    "netcfg/hostname",
    "netcfg/get_domain",
    "netcfg/get_ipaddress",
    "netcfg/get_netmask",
    "netcfg/get_gateway",
    "netcfg/get_nameservers",
    "netcfg/confirm_static",
    "netcfg/disable_autoconfig",
    "netcfg/disable_dhcp",
    "netcfg/use_dhcp",
    "passwd/root-password",
    "passwd/root-password-again",
    "passwd/root-password-crypted",
    "mirror/country",
    "mirror/http/hostname",
    "mirror/http/directory",
];

/// The question a logical preseed line answers, if any: `owner question
/// type value`, where owner is e.g. `d-i`.
fn question(logical: &str) -> Option<&str> {
    let mut words = logical.split_whitespace();
    let first = words.next()?;
    if first.starts_with('#') {
        return None;
    }
    words.next()
}

/// Splits text into logical lines: debconf joins a line ending in `\` with
/// the next one, so a dropped question must take its continuations along.
fn logical_lines(text: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in text.lines() {
        cur.push(line);
        if !line.trim_end().ends_with('\\') || line.trim_start().starts_with('#') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub fn answers(v: &Values) -> Vec<String> {
    let n = v.network;
    let ns: Vec<String> = n.nameservers().iter().map(|a| a.to_string()).collect();
    vec![
        format!("d-i netcfg/disable_autoconfig boolean true"),
        format!("d-i netcfg/get_ipaddress string {}", n.ip()),
        format!("d-i netcfg/get_netmask string {}", n.netmask()),
        format!("d-i netcfg/get_gateway string {}", n.gateway()),
        format!("d-i netcfg/get_nameservers string {}", ns.join(" ")),
        format!("d-i netcfg/confirm_static boolean true"),
        format!("d-i netcfg/get_hostname string {}", v.hostname),
        format!("d-i netcfg/hostname string {}", v.hostname),
        format!("d-i netcfg/get_domain string {}", v.domain),
        format!("d-i mirror/country string manual"),
        format!("d-i mirror/http/hostname string {}", v.mirror_host.as_str()),
        format!("d-i mirror/http/directory string {}", v.mirror_dir.as_str()),
        format!("d-i passwd/root-password-crypted password {}", v.root_hash.expose()),
    ]
}

/// Template + answers → preseed text.
pub fn render(template: &str, v: &Values) -> String {
    let mut out = String::with_capacity(template.len() + 1024);
    for logical in logical_lines(template) {
        let joined = logical.join("\n");
        if question(&joined).is_some_and(|q| OWNED_QUESTIONS.contains(&q)) {
            continue;
        }
        for l in logical {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push_str("### guest-installer: per-VM answers (these override the template)\n");
    for a in answers(v) {
        debug_assert!(!a.contains(['\n', '\r', '\0', '\\', '"']));
        out.push_str(&a);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MirrorDir, MirrorHost};

    fn values() -> (Hostname, DomainName, Network, CryptHash, MirrorHost, MirrorDir) {
        (
            Hostname::parse("web1").unwrap(),
            DomainName::parse("example.org").unwrap(),
            Network::new("192.0.2.10", "255.255.255.0", "192.0.2.1", &["192.0.2.53"]).unwrap(),
            CryptHash::hash_cleartext("pw").unwrap(),
            MirrorHost::parse("deb.debian.org").unwrap(),
            MirrorDir::parse("/debian").unwrap(),
        )
    }

    fn render_with(template: &str) -> String {
        let (h, d, n, c, mh, md) = values();
        render(template, &Values { hostname: &h, domain: &d, network: &n, root_hash: &c, mirror_host: &mh, mirror_dir: &md })
    }

    #[test]
    fn template_answers_for_owned_questions_are_replaced() {
        let t = "d-i netcfg/get_hostname string template\nd-i passwd/root-password password cleartext\n\
                 d-i passwd/root-password-again password cleartext\nd-i time/zone string UTC\n\
                 d-i mirror/http/hostname \\\n  string evil.example\n# d-i netcfg/get_hostname string commented\n";
        let out = render_with(t);
        assert!(!out.contains("string template"));
        assert!(!out.contains("cleartext"));
        assert!(!out.contains("evil.example"));
        assert!(out.contains("d-i time/zone string UTC\n"));
        assert!(out.contains("# d-i netcfg/get_hostname string commented\n"));
        assert_eq!(out.matches("netcfg/get_hostname string web1").count(), 1);
        assert!(out.contains("d-i netcfg/get_ipaddress string 192.0.2.10\n"));
        assert!(out.contains("d-i passwd/root-password-crypted password $6$"));
    }

    #[test]
    fn rendering_adds_exactly_our_lines() {
        let t = "d-i time/zone string UTC\n";
        let out = render_with(t);
        let (h, d, n, c, mh, md) = values();
        let ours = answers(&Values { hostname: &h, domain: &d, network: &n, root_hash: &c, mirror_host: &mh, mirror_dir: &md });
        assert_eq!(out.lines().count(), 1 + 1 + ours.len());
    }

    /// Every hostile string is refused by the types that feed the preseed,
    /// so it can never reach `render`.
    #[test]
    fn hostile_values_cannot_be_built() {
        let hostile = [
            "web1\nd-i preseed/late_command string rm -rf /",
            "web1\rd-i x",
            "a\0b",
            "a\\",
            "a\"b",
            "a'b",
            "a b",
            "a\tb",
            "$(reboot)",
            "`id`",
            "web\u{7f}",
            "wéb",
            "",
            "-web",
            &"a".repeat(300),
        ];
        for h in hostile {
            assert!(Hostname::parse(h).is_err(), "{h:?}");
            assert!(DomainName::parse(h).is_err(), "{h:?}");
            assert!(crate::types::parse_ipv4(h).is_err(), "{h:?}");
            assert!(MirrorHost::parse(h).is_err() || !h.contains(|c: char| c.is_control() || c == ' '), "{h:?}");
            assert!(Network::new(h, "255.255.255.0", "192.0.2.1", &["192.0.2.53"]).is_err());
            assert!(Network::new("192.0.2.10", "255.255.255.0", "192.0.2.1", &[h]).is_err());
            if h.starts_with("$6$") || h.starts_with("$y$") {
                assert!(CryptHash::parse_hash(h).is_err());
            }
        }
    }
}
