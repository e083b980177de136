//! `machine add|remove|show`: the registry, for admins.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::hypervisor;
use crate::image;
use crate::lock;
use crate::registry::Machine;
use crate::state::VmDir;
use crate::types::VmName;
use crate::fsutil;
use serde_json::Value;

pub fn add(ctx: &Ctx, m: &Machine) -> Result<Outcome> {
    ctx.require_admin()?;
    let roots = &ctx.config.disk_roots;
    if !roots.is_empty() && !roots.iter().any(|r| m.disk.is_under(r)) {
        let allowed: Vec<&str> = roots.iter().map(|r| r.as_str()).collect();
        return Err(Error::invalid(format!("invalid disk: must lie under one of {}", allowed.join(", "))));
    }
    if let Some(i) = &m.image {
        image::load(&ctx.config.images_dir(), i)?;
    }
    if let Some(t) = &m.template {
        crate::template::load(&ctx.config.templates_dir(), t)?;
    }
    let reg = ctx.registry();
    if let Some((other, what)) = reg.conflicts(m)? {
        return Err(Error::invalid(format!("invalid {what}: machine {other} already uses it")));
    }
    reg.add(m)?;
    Ok(Outcome { human: format!("{}: registered\n", m.name), json: machine_json(m) })
}

pub fn remove(ctx: &Ctx, vm: &VmName) -> Result<Outcome> {
    ctx.require_admin()?;
    let reg = ctx.registry();
    reg.get(vm)?;
    let vmdir = VmDir::new(ctx.config, vm);
    let locks = ctx.config.locks_dir();
    fsutil::ensure_dir(&locks, 0o700).map_err(|e| Error::failed(format!("cannot create {}: {e}", locks.display())))?;
    let _lock = lock::try_lock(&ctx.config.vm_lock(vm))?;
    if hypervisor::for_config(ctx.config)?.is_running(vm, &vmdir)? {
        return Err(Error::busy(format!("machine {vm} is running; cancel its install first")));
    }
    reg.remove(vm)?;
    match std::fs::remove_dir_all(&vmdir.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::failed(format!("machine {vm} unregistered, but {} could not be removed: {e}", vmdir.dir.display()))),
    }
    Ok(Outcome { human: format!("{vm}: removed\n"), json: obj([("vm", Value::from(vm.as_str()))]) })
}

pub fn show(ctx: &Ctx, vm: &VmName) -> Result<Outcome> {
    ctx.require_admin()?;
    let m = ctx.registry().get(vm)?;
    let json = machine_json(&m);
    let human = serde_json::to_string_pretty(&json).expect("json") + "\n";
    Ok(Outcome { human, json })
}

fn machine_json(m: &Machine) -> serde_json::Map<String, Value> {
    let Value::Object(mut map) = serde_json::to_value(m).expect("machine serializes") else { unreachable!() };
    map.insert("vm".into(), Value::from(m.name.as_str()));
    map
}
