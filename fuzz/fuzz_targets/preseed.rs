//! Preseed rendering: whatever the template and the host name, the output
//! is the template's kept lines plus exactly our answers, one line each.
#![no_main]
use guest_installer::config::{MirrorDir, MirrorHost};
use guest_installer::preseed::{answers, render, Values};
use guest_installer::secret::CryptHash;
use guest_installer::types::{DomainName, Hostname, Network};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (host, template) = s.split_once('\u{0}').unwrap_or(("web1", s));
    let Ok(hostname) = Hostname::parse(host) else { return };
    let domain = DomainName::parse("example.org").unwrap();
    let network = Network::new("192.0.2.10", "255.255.255.0", "192.0.2.1", &["192.0.2.53"]).unwrap();
    let hash = CryptHash::parse_hash("$6$abcdefgh$3rj1vTLX64btReFsM4MQ22otcD40l7vbtw7qCyr0dxc4kxNmgx53xVM8gWiLYbCqTHTbXFaVFU7ZT28pnvdyu0").unwrap();
    let mh = MirrorHost::parse("deb.debian.org").unwrap();
    let md = MirrorDir::parse("/debian").unwrap();
    let v = Values { hostname: &hostname, domain: &domain, network: &network, root_hash: &hash, mirror_host: &mh, mirror_dir: &md };
    let out = render(template, &v);
    let ours = answers(&v);
    let tail: Vec<&str> = out.lines().rev().take(ours.len()).collect();
    assert_eq!(tail.len(), ours.len());
    for (line, want) in tail.iter().rev().zip(&ours) {
        assert_eq!(line, want);
    }
    // The template contributes only its own lines, never more.
    assert!(out.lines().count() <= template.lines().count() + 1 + ours.len());
    assert_eq!(out.matches("d-i netcfg/get_hostname ").count(), 1);
});
