//! Clones on each kind of network, booted under qemu on a bridge in a
//! network namespace the test makes (documentation prefixes only:
//! 198.51.100.0/24 and 2001:db8:1::/64; no way out), reached with real
//! `ssh` against the guest's real sshd:
//!
//! - `dual`: IPv4 and IPv6 (a gateway in the prefix): sshd answers over
//!   both, and the guest has exactly its registered addresses;
//! - `six`: IPv6 only, with a link-local gateway: sshd answers over IPv6,
//!   the guest has exactly its address and routes by that gateway;
//! - `dhcp`: `ip=dhcp`: a real dnsmasq in the namespace holds a
//!   reservation for its MAC, and the guest has that address.
//!
//! One boot each, all three at once. Needs root (namespaces, taps), qemu,
//! openssh-client, dnsmasq (package dnsmasq-base) and the template fixture
//! (tests/common/golden.rs).

mod common;

use common::netns::{NetNs, BRIDGE};
use common::ssh::{keypair, ssh_answer, wait_for_login_prompts, Auth};
use common::*;
use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Three clones at once on two cores under TCG: a clone with no login
/// prompt by then is hung.
const BOOT_BOUND: Duration = Duration::from_secs(600);

/// A daemon the test started, killed (by its own pid) and reaped on drop.
struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The global addresses the guest has (`ip -o addr show scope global`'s
/// ADDR/LEN column), sorted.
fn global_addrs(ip_o_addr: &str) -> Vec<String> {
    let mut v: Vec<String> = ip_o_addr.lines().filter_map(|l| l.split_whitespace().nth(3)).map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn clones_come_up_on_ipv6_dual_stack_and_dhcp_with_their_registered_addresses() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (network namespaces and taps)");
        return;
    }
    let env = Env::new();
    env.use_qemu_on_bridge(BRIDGE);
    add_template(&env);
    // Declared before the guests and the daemon: dropped after them.
    let ns = NetNs::new("fam", "198.51.100.1/24");
    ns.add_addr("2001:db8:1::1/64");
    let work = env.root().join("fam");
    fs::create_dir(&work).unwrap();

    // The site's DHCP server: a reservation for dhcp's MAC, nothing else.
    let dhcp_mac = "00:16:3e:00:00:43";
    let leases = work.join("leases");
    let log = work.join("dnsmasq.log");
    let dnsmasq = Daemon(
        ns.cmd("dnsmasq", &[
            "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--bind-interfaces", &format!("--interface={BRIDGE}"),
            "--user=root", "--group=root", "--pid-file",
            "--dhcp-range=198.51.100.0,static,255.255.255.0,1h", &format!("--dhcp-host={dhcp_mac},198.51.100.13"),
            "--dhcp-option=option:dns-server,198.51.100.53",
            &format!("--dhcp-leasefile={}", leases.display()), "--log-dhcp", &format!("--log-facility={}", log.display()),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap(),
    );

    let (key, public) = keypair(&work, "bob", "bob@laptop");
    env.run(As::Remote(OWNER), &["key", "add", &public], b"").ok();
    // (vm, MAC, network words, host name, where ssh reaches it, its addresses)
    let guests: [(&str, &str, &[&str], &str, &[&str], &[&str]); 3] = [
        (
            "dual", "00:16:3e:00:00:41",
            &["ip=198.51.100.11", "netmask=255.255.255.0", "gateway=198.51.100.1", "ip6=2001:db8:1::11/64", "gateway6=2001:db8:1::1",
              "nameserver=198.51.100.53", "nameserver=2001:db8:1::53"],
            "gi-dual", &["198.51.100.11", "2001:db8:1::11"], &["198.51.100.11/24", "2001:db8:1::11/64"],
        ),
        ("six", "00:16:3e:00:00:42", &["ip6=2001:db8:1::12/64", "gateway6=fe80::1", "nameserver=2001:db8:1::53"], "gi-six", &["2001:db8:1::12"], &["2001:db8:1::12/64"]),
        ("dhcp", dhcp_mac, &["ip=dhcp"], "gi-dhcp", &["198.51.100.13"], &["198.51.100.13/24"]),
    ];
    for (vm, mac, net, ..) in guests {
        let vol = env.volume_qcow2(vm);
        let mut args = vec!["machine".to_owned(), "add".into(), vm.into(), "--json".into(), format!("owner={OWNER}"), format!("mac={mac}"),
            format!("disk={}", vol.display()), "memory=512".into()];
        args.extend(net.iter().map(|w| w.to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run(As::Root, &a, b"").ok();
    }
    // What machine show and list say of them.
    let shown = env.run(As::Root, &["machine", "show", "six", "--json"], b"").ok().json();
    assert_eq!(shown["network"], serde_json::json!({"ip6": "2001:db8:1::12/64", "gateway6": "fe80::1", "nameservers": ["2001:db8:1::53"]}));
    let list = env.run(As::Remote(OWNER), &["list", "--json"], b"").ok().json();
    let row = |vm: &str| list["machines"].as_array().unwrap().iter().find(|m| m["vm"] == vm).unwrap().clone();
    assert_eq!((row("dual")["ip"].as_str(), row("dual")["ip6"].as_str()), (Some("198.51.100.11"), Some("2001:db8:1::11")));
    assert_eq!((row("six")["ip"].clone(), row("dhcp")["ip"].as_str()), (serde_json::Value::Null, Some("dhcp")));

    let mut guards = Vec::new();
    let requested = Instant::now();
    for (vm, _, _, host, ..) in guests {
        let o = env.run_prefixed(&ns.prefix(), As::Remote(OWNER), &["install", vm, "template=tpl", &format!("hostname={host}"), "--json"], b"\n");
        guards.push(Guest::new(&env, vm));
        assert_eq!(o.ok().json()["state"], "installing");
    }
    let prompts: Vec<(&str, &str)> = guests.iter().map(|g| (g.0, g.3)).collect();
    wait_for_login_prompts(&env, &prompts, BOOT_BOUND);

    let probe = "hostname; ip -o addr show scope global; echo --; ip -6 route show default; ip -4 route show default";
    for (vm, _, _, host, reach, addrs) in guests {
        for addr in reach {
            let o = ssh_answer(&ns, &Auth::Key(&key), addr, probe);
            assert_eq!(o.code, 0, "{vm} over {addr}: {o:?}");
            let (head, routes) = o.stdout.split_once("--\n").unwrap();
            let (name, ip) = head.split_once('\n').unwrap();
            assert_eq!(name, host, "{vm}");
            assert_eq!(global_addrs(ip), addrs.to_vec(), "{vm}: the guest's addresses\n{}", o.stdout);
            let want_routes = match vm {
                "dual" => "default via 2001:db8:1::1",
                "six" => "default via fe80::1",
                _ => "default via 198.51.100.1",
            };
            assert!(routes.contains(want_routes), "{vm}: routes\n{routes}");
        }
        // Its name servers: the registered ones, or the lease's (through
        // resolved's stub) with DHCP.
        let o = ssh_answer(&ns, &Auth::Key(&key), reach[0], "cat /etc/resolv.conf; echo --; resolvectl dns");
        let (conf, dns) = o.stdout.split_once("--\n").unwrap_or_else(|| panic!("{vm}: {o:?}"));
        let servers: Vec<&str> = conf.lines().filter_map(|l| l.strip_prefix("nameserver ")).collect();
        match vm {
            "dual" => assert_eq!(servers, ["198.51.100.53", "2001:db8:1::53"], "{vm}: {conf}"),
            "six" => assert_eq!(servers, ["2001:db8:1::53"], "{vm}: {conf}"),
            _ => {
                assert_eq!(servers, ["127.0.0.53"], "{vm}: {conf}");
                assert!(dns.contains("198.51.100.53"), "{vm}: resolvectl dns\n{dns}");
            }
        }
        eprintln!("BENCH {vm}: request -> SSH login over each family {:.1} s (TCG)", requested.elapsed().as_secs_f64());
        let s = env.run(As::Remote(OWNER), &["status", vm, "--json"], b"").ok().json();
        assert_eq!(s["state"], "installed", "{s}");
        env.run(As::Remote(OWNER), &["stop", vm, "--force", "--json"], b"").ok();
    }
    // The address came from the reservation (dnsmasq saw the MAC).
    let lease = fs::read_to_string(&leases).unwrap_or_default();
    assert!(lease.contains(&format!("{dhcp_mac} 198.51.100.13 ")), "leases:\n{lease}\nlog:\n{}", fs::read_to_string(&log).unwrap_or_default());
    drop(guards);
    drop(dnsmasq);
}
