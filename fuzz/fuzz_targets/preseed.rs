//! Preseed rendering: whatever the preseed template and the host name, debconf
//! reading the output (as debconf-set-selections does: only `\n` ends a
//! line, a trailing `\` joins the next, `#` lines are comments) sees each
//! question we answer exactly once, with our value, and never an answer of
//! the template's for those questions; our lines come last and intact.
#![no_main]
use guest_installer::config::{Mirror, MirrorDir, MirrorHost};
use guest_installer::guest::Guest;
use guest_installer::preseed::{answers, render, template_late_command, Values, OWNED_QUESTIONS};
use guest_installer::rootlogin::RootLogin;
use guest_installer::secret::{CryptHash, RootPassword};
use guest_installer::sshkey::PublicKey;
use guest_installer::types::{DomainName, Hostname, Network};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

/// debconf's reading, written independently of the renderer's.
fn directives(text: &str) -> Vec<(String, String)> {
    let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
    let mut out = Vec::new();
    // Each physical line is read once, as a line-by-line reader does: one
    // ending in `\` is joined (without it) to the next physical line.
    let mut lines = text.split('\n');
    while let Some(first) = lines.next() {
        let mut line = String::new();
        let mut physical = first;
        loop {
            match physical.strip_suffix('\\') {
                Some(head) => {
                    line.push_str(head);
                    match lines.next() {
                        Some(next) => physical = next,
                        None => break,
                    }
                }
                None => {
                    line.push_str(physical);
                    break;
                }
            }
        }
        let t = line.trim_start_matches(space);
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = t.split(space).filter(|w| !w.is_empty()).collect();
        if words.len() >= 2 {
            out.push((words[1].to_owned(), line.clone()));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (host, template) = s.split_once('\u{0}').unwrap_or(("web1", s));
    let Ok(hostname) = Hostname::parse(host) else { return };
    let domain = DomainName::parse("example.org").unwrap();
    let network = Network::new("192.0.2.10", "255.255.255.0", "192.0.2.1", &["192.0.2.53"]).unwrap();
    let hash = CryptHash::parse_hash("$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0").unwrap();
    let mirror = Mirror { host: MirrorHost::parse("deb.debian.org").unwrap(), directory: MirrorDir::parse("/debian").unwrap() };
    // Keys and a locked root: our late_command carries the most.
    let key = PublicKey::parse_line("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH+2i5AKkiRgfmm31jnpzTRX9C1c7OzuKqgSZ7WAoSvs bob@laptop").unwrap();
    let root = if host.len() % 2 == 0 { RootLogin::new(vec![key], RootPassword::Locked).unwrap() } else { RootLogin::console_only(hash) };
    let guest = Guest { hostname: &hostname, domain: &domain, network: &network, root: &root };
    let v = Values { guest: &guest, mirror: &mirror };
    let out = render(template, &v);
    let ours = answers(&v, template_late_command(template).as_deref());
    assert!(out.ends_with(&format!("{}\n", ours.join("\n"))), "our lines are not last and intact");
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for (q, line) in directives(&out) {
        seen.entry(q).or_default().push(line);
    }
    for q in OWNED_QUESTIONS {
        let ours_for_q: Vec<&String> = ours.iter().filter(|a| a.split(' ').nth(1) == Some(q)).collect();
        let got = seen.get(*q).cloned().unwrap_or_default();
        assert_eq!(got.len(), ours_for_q.len(), "{q}: debconf sees {got:?}");
        for (g, o) in got.iter().zip(ours_for_q) {
            assert_eq!(g, o, "{q}");
        }
    }
});
