//! Debian 13 guests from the mirror alone: `template build suite=trixie`
//! bootstraps a template with the real mmdebstrap from the config's
//! mirror (no installer image imported), and a clone of it boots its own
//! Debian 13 kernel under qemu (TCG) to its login prompt with the identity
//! its request gave.
//!
//! Needs (scripts/setup.sh): mmdebstrap, debian-archive-keyring (which
//! holds trixie's key), e2fsprogs, qemu-system-x86, qemu-utils, and the
//! Debian mirror of the host's apt sources.

mod common;

use common::*;
use guest_installer::template;
use std::time::{Duration, Instant};

/// A trixie clone under TCG shows its prompt in about a minute.
const BOOT_BOUND: Duration = Duration::from_secs(420);

#[test]
fn a_trixie_template_built_from_the_mirror_alone_boots_its_clone_with_its_identity() {
    let env = Env::new();
    env.use_qemu();
    assert!(env.run(As::Root, &["images", "--json"], b"").ok().json()["images"].as_array().unwrap().is_empty());

    let started = Instant::now();
    let o = env.run(As::Root, &["template", "build", "suite=trixie", "--json"], b"");
    assert_eq!(o.code, 0, "template build failed: {o:?}");
    eprintln!("BENCH template build suite=trixie (mmdebstrap + seal + mke2fs): {:.1} s", started.elapsed().as_secs_f64());
    let b = o.json();
    assert_eq!((b["name"].as_str(), b["suite"].as_str()), (Some("trixie"), Some("trixie")), "{b}");
    assert!(b["image"].is_null(), "{b}");
    // Debian 13's kernel series.
    assert!(b["kernel_version"].as_str().unwrap().starts_with("6.12."), "{b}");

    let t = env.run(As::Remote(OWNER), &["templates", "--json"], b"").ok().json();
    let row = &t["templates"][0];
    assert_eq!((row["name"].as_str(), row["suite"].as_str()), (Some("trixie"), Some("trixie")), "{t}");
    assert!(row["image"].is_null(), "{t}");
    let text = env.run(As::Remote(OWNER), &["templates"], b"").ok().stdout.clone();
    assert!(text.contains("from suite=trixie suite trixie"), "{text}");

    let volume = env.volume_sized("t13", 3 << 30);
    env.machine_with("t13", 7, None, &[&format!("disk={}", volume.display())]);
    let requested = Instant::now();
    let o = env.run(As::Remote(OWNER), &["install", "t13", "hostname=deb13", "template=trixie", "--json"], b"trixie's root password\n");
    let _guest = Guest::new(&env, "t13");
    let j = o.ok().json();
    assert_eq!((j["template"].as_str(), j["state"].as_str()), (Some("trixie"), Some("installing")), "{j}");
    assert!(j["image"].is_null(), "{j}");

    let deadline = Instant::now() + BOOT_BOUND;
    loop {
        let c = console(&env, "t13");
        assert!(!c.contains(template::REFUSED_LINE), "the clone refused its seed:\n{}", readable_tail(&c, 40));
        if c.contains("deb13 login:") {
            break;
        }
        assert!(Instant::now() < deadline, "no login prompt within {BOOT_BOUND:?}:\n{}", readable_tail(&c, 40));
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("BENCH trixie clone: request -> login prompt {:.1} s (TCG)", requested.elapsed().as_secs_f64());
    let c = console(&env, "t13");
    assert!(c.contains(template::APPLIED_LINE), "{}", readable_tail(&c, 40));
    assert!(c.contains("gi-identity: address=192.0.2.17/24 gateway=192.0.2.1"), "{}", readable_tail(&c, 40));
    // Debian 13's own system (its getty's issue line).
    assert!(c.contains("Debian GNU/Linux 13 deb13 ttyS0"), "{}", readable_tail(&c, 40));

    let s = env.run(As::Remote(OWNER), &["status", "t13", "--json"], b"").ok().json();
    assert_eq!((s["state"].as_str(), s["template"].as_str()), (Some("installed"), Some("trixie")), "{s}");
    assert!(s["image"].is_null(), "{s}");
    let text = env.run(As::Remote(OWNER), &["status", "t13"], b"").ok().stdout.clone();
    assert!(text.starts_with("t13: installed (template trixie)"), "{text}");
}
