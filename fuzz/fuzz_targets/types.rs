//! Every value type: what parses is free of anything that could break a
//! preseed line, a boot config, a domain config or a file name; bad input
//! is an error, never a panic.
#![no_main]
use guest_installer::types::*;
use libfuzzer_sys::fuzz_target;

fn safe(s: &str) {
    assert!(
        !s.chars().any(|c| c.is_control() || c.is_whitespace() || "\"'\\`$;".contains(c)),
        "unsafe value accepted: {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(v) = VmName::parse(s) {
        safe(v.as_str());
        assert!(!v.as_str().contains('/') && v.as_str() != "..");
    }
    if let Ok(v) = Hostname::parse(s) {
        safe(v.as_str());
    }
    if let Ok(v) = DomainName::parse(s) {
        safe(v.as_str());
    }
    if let Ok(v) = ImageName::parse(s) {
        safe(v.as_str());
        assert!(!v.as_str().contains('/') && !v.as_str().contains(".."));
    }
    if let Ok(v) = Principal::parse(s) {
        safe(v.as_str());
    }
    if let Ok(v) = DiskPath::parse(s) {
        safe(v.as_str());
        assert!(!v.as_str().split('/').any(|c| c == ".." || c == "."));
    }
    if let Ok(v) = Mac::parse(s) {
        assert_eq!(Mac::parse(&v.to_string()), Ok(v));
    }
    if let Ok(a) = parse_ipv4(s) {
        assert_eq!(a.to_string(), s, "only canonical dotted quads");
    }
    if let Ok(m) = Netmask::parse(s) {
        assert!((8..=30).contains(&m.prefix_len()));
    }
    let parts: Vec<&str> = s.splitn(4, ' ').collect();
    if let [ip, mask, gw, ns] = parts.as_slice() {
        if let Ok(n) = Network::new(ip, mask, gw, &[ns]) {
            let v4 = n.v4().expect("a static IPv4 network");
            assert_ne!(v4.ip(), v4.gateway());
        }
        let fields = NetworkFields { ip6: Some(ip), gateway6: Some(gw), nameservers: &[ns], ..Default::default() };
        if let Ok(n) = Network::from_fields(&fields) {
            let v6 = n.v6().expect("a static IPv6 network");
            assert_ne!(v6.addr().addr(), v6.gateway());
            assert_eq!(Ipv6Cidr::parse(&v6.addr().to_string()), Ok(v6.addr()));
        }
    }
    let _ = MemoryMib::parse(s);
    let _ = Sha256Hex::parse(s);
});
