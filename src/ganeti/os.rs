//! The OS definition's `create`, `rename` and `verify`, run by Ganeti's
//! node daemon as root with the instance in its environment.
//!
//! `create` clones the variant's golden template onto disk 0 (as `install
//! template=T` clones onto a machine's volume) and writes the identity
//! seed into the clone's own filesystem (`/var/lib/gi-identity/seed`,
//! 0600): Ganeti gives an instance no second disk to carry it. The
//! template's first-boot unit applies the seed and removes it.

use super::env::{Create, InstanceName, Rename};
use super::guestfs::GuestFs;
use super::GanetiError;
use crate::config::Config;
use crate::guest::Guest;
use crate::template::{self, clone};
use crate::types::{DomainName, Hostname};
use std::path::Path;

/// Where the seed lives inside a clone (the first-boot unit's
/// `seed_file`).
pub const SEED_DIR: &str = "/var/lib/gi-identity";
pub const SEED_NAME: &str = "seed";
/// The unit's marker: present once a seed was applied.
const DONE: &str = "/var/lib/gi-identity/done";
const MAX_SMALL_FILE: u64 = 64 * 1024;

fn guestfs<'a>(config: &'a Config, disk: &'a Path) -> GuestFs<'a> {
    GuestFs { debugfs: config.debugfs.path(), disk, timeout: config.timeouts.tool() }
}

/// Clones the variant onto disk 0 and gives it its identity. Returns a
/// line for Ganeti's OS log (no secret in it).
pub fn create(config: &Config, c: &Create) -> Result<String, GanetiError> {
    let tpl = template::load(&config.templates_dir(), &c.variant)?;
    template::require_clonable(&tpl, &c.network)?;
    let started = std::time::Instant::now();
    let method = clone::clone_onto(&tpl.root(), &c.disk).map_err(|e| {
        if e.touched_volume() {
            let _ = clone::wipe(&c.disk, Some(&tpl.root()));
        }
        GanetiError::Clone(e)
    })?;
    let fs_uuid = template::random_uuid().map_err(|e| GanetiError::Io(format!("cannot read random bytes: {e}")))?;
    let domain = c.instance.domain_or(&config.domain);
    let seed = template::render_seed_with_mac(
        &template::Identity {
            guest: &Guest { hostname: &c.instance.host, domain, network: &c.network, root: &c.root },
            fs_uuid: &fs_uuid,
        },
        Some(c.mac),
    );
    let disk = Path::new(c.disk.as_str());
    if let Err(e) = guestfs(config, disk).replace(SEED_DIR, 0o700, SEED_NAME, seed.as_bytes(), 0o600) {
        // Never leave a clone that would boot as the template.
        let _ = clone::wipe(&c.disk, Some(&tpl.root()));
        return Err(e.into());
    }
    Ok(format!(
        "{}: {} template {} onto {} ({}, {:.1} s); identity for {}.{} ({}, MAC {}; root login: {}) written to {SEED_DIR}/{SEED_NAME}, applied at first boot\n",
        if c.reinstall { "reinstalled" } else { "created" },
        if c.reinstall { "cloned again" } else { "cloned" },
        c.variant,
        c.disk,
        method.as_str(),
        started.elapsed().as_secs_f64(),
        c.instance.host,
        domain,
        c.network.describe(),
        c.mac,
        c.root.describe(),
    ))
}

/// Gives the stopped guest its new host name: in its identity seed if the
/// first boot is still to come, else in /etc/hostname and /etc/hosts.
pub fn rename(config: &Config, r: &Rename) -> Result<String, GanetiError> {
    let (new_domain, old_domain) = (r.new.domain_or(&config.domain), r.old.domain_or(&config.domain));
    // Ganeti also runs rename after an import, from the exported name: an
    // unchanged name leaves the imported disk exactly as it was exported.
    if r.new.host == r.old.host && new_domain == old_domain {
        return Ok(format!("{}.{new_domain}: the name is unchanged; nothing to do\n", r.new.host));
    }
    let disk = Path::new(r.disk.as_str());
    let fs = guestfs(config, disk);
    fs.check_clean()?;
    let seed_path = format!("{SEED_DIR}/{SEED_NAME}");
    if fs.stat(DONE)?.is_none() {
        if let Some(seed) = fs.read(&seed_path, template::SEED_BYTES as u64)? {
            let text = String::from_utf8(seed).map_err(|_| GanetiError::Guest("the identity seed is not text".into()))?;
            let new = renamed_seed(&text, &r.new.host, new_domain)?;
            fs.replace(SEED_DIR, 0o700, SEED_NAME, new.as_bytes(), 0o600)?;
            return Ok(format!("renamed {} to {}.{new_domain} in the identity seed (applied at first boot)\n", r.old.host, r.new.host));
        }
    }
    let hosts = fs.read("/etc/hosts", MAX_SMALL_FILE)?.unwrap_or_default();
    let hosts = String::from_utf8(hosts).map_err(|_| GanetiError::Guest("/etc/hosts is not text".into()))?;
    let hosts = renamed_hosts(&hosts, &r.old, old_domain, &r.new, new_domain);
    fs.replace("/etc", 0o755, "hostname", format!("{}\n", r.new.host).as_bytes(), 0o644)?;
    fs.replace("/etc", 0o755, "hosts", hosts.as_bytes(), 0o644)?;
    Ok(format!("renamed {} to {}.{new_domain} in /etc/hostname and /etc/hosts\n", r.old.host, r.new.host))
}

/// The seed with its host name and domain replaced; refused unless it is
/// one of ours (its magic first line, of any version: a clone made
/// by an older guest-installer may still await its first boot).
fn renamed_seed(text: &str, host: &Hostname, domain: &DomainName) -> Result<String, GanetiError> {
    if !matches!(text.lines().next(), Some(template::SEED_MAGIC | template::SEED_MAGIC_V1 | template::SEED_MAGIC_V3)) {
        return Err(GanetiError::Guest(format!("{SEED_DIR}/{SEED_NAME} is not an identity seed")));
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with("hostname=") {
            out.push_str(&format!("hostname={host}"));
        } else if line.starts_with("domain=") {
            out.push_str(&format!("domain={domain}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}

/// /etc/hosts with the old names (full and short) replaced, word by word;
/// everything else as the guest had it.
fn renamed_hosts(text: &str, old: &InstanceName, old_domain: &DomainName, new: &InstanceName, new_domain: &DomainName) -> String {
    let old_full = format!("{}.{old_domain}", old.host);
    let new_full = format!("{}.{new_domain}", new.host);
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.split_inclusive('\n') {
        let (body, comment) = match line.find('#') {
            Some(i) => line.split_at(i),
            None => (line, ""),
        };
        let mut rebuilt = String::new();
        for (i, tok) in body.split_inclusive(char::is_whitespace).enumerate() {
            let word = tok.trim_end();
            let ws = &tok[word.len()..];
            // The first word is the address.
            let w = if i == 0 {
                word.to_owned()
            } else if word == old_full {
                new_full.clone()
            } else if word == old.host.as_str() {
                new.host.to_string()
            } else {
                word.to_owned()
            };
            rebuilt.push_str(&w);
            rebuilt.push_str(ws);
        }
        out.push_str(&rebuilt);
        out.push_str(comment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lines_are_renamed_word_by_word() {
        let old = InstanceName::parse("web1.a.test").unwrap();
        let new = InstanceName::parse("web2.b.test").unwrap();
        let (od, nd) = (old.domain.clone().unwrap(), new.domain.clone().unwrap());
        let text = "127.0.0.1\tlocalhost\n198.51.100.21\tweb1.a.test web1 web10 # web1 here\n::1 localhost\n";
        assert_eq!(
            renamed_hosts(text, &old, &od, &new, &nd),
            "127.0.0.1\tlocalhost\n198.51.100.21\tweb2.b.test web2 web10 # web1 here\n::1 localhost\n"
        );
    }

    #[test]
    fn only_our_seeds_are_renamed() {
        let h = Hostname::parse("new").unwrap();
        let d = DomainName::parse("b.test").unwrap();
        let seed = format!("{}\nhostname=old\ndomain=a.test\naddress=198.51.100.21\nend\n", template::SEED_MAGIC);
        let r = renamed_seed(&seed, &h, &d).unwrap();
        assert!(r.contains("\nhostname=new\ndomain=b.test\naddress=198.51.100.21\nend\n"), "{r}");
        assert!(renamed_seed("hostname=old\n", &h, &d).is_err());
    }
}
