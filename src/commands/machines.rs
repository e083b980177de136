//! `machine add|remove|show`: the registry, for admins. A remote admin
//! gives a size and the volume is made in the configured pool (in cluster
//! mode: the size of disk 0 of the machine's Ganeti instance, which Ganeti
//! makes at the first install); only root on the host names an existing
//! volume (`disk=`), since that is a host path.

use super::{obj, Ctx, Outcome};
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hypervisor;
use crate::image;
use crate::lock;
use crate::registry::{Machine, NewMachine, Origin, Storage, VolumeSpec};
use crate::state::VmDir;
use crate::types::{DiskPath, VmName, VolumeSize};
use crate::volume::pool::PoolConfig;
use crate::volume::{self, VolumeError};
use serde_json::Value;

/// Where a new machine's disk comes from, decided once, before the
/// registry is touched.
enum DiskSource<'a> {
    /// `disk=`: an existing volume on this host (root only), checked.
    Import(DiskPath, volume::Identity),
    /// `size=`: a new volume from the pool.
    Pool(&'a PoolConfig, VolumeSize),
    /// `size=` in cluster mode: disk 0 of the machine's Ganeti instance,
    /// which Ganeti makes when the machine is first installed.
    Instance(VolumeSize),
}

pub fn add(ctx: &Ctx, m: &NewMachine) -> Result<Outcome> {
    ctx.require_admin()?;
    // Everything that can be refused without the registry is refused
    // before it is touched.
    let source = match &m.volume {
        VolumeSpec::Disk(disk) => {
            if *ctx.caller != Caller::LocalRoot {
                return Err(Error::denied(
                    "disk= names a path on the host, which only root on the host may do; give size= and the volume is made for the machine",
                ));
            }
            let roots = &ctx.config.disk_roots;
            if !roots.is_empty() && !roots.iter().any(|r| disk.is_under(r)) {
                let allowed: Vec<&str> = roots.iter().map(|r| r.as_str()).collect();
                return Err(Error::invalid(format!("invalid disk: must lie under one of {}", allowed.join(", "))));
            }
            DiskSource::Import(disk.clone(), volume::check_import(disk, ctx.config.state_dir.path())?)
        }
        VolumeSpec::Size(size) if ctx.config.cluster.is_some() => DiskSource::Instance(*size),
        VolumeSpec::Size(size) => DiskSource::Pool(ctx.config.volumes.as_ref().ok_or(VolumeError::NoPool)?, *size),
    };
    if let Some(i) = &m.image {
        image::load(&ctx.config.images_dir(), i)?;
    }
    if let Some(t) = &m.template {
        crate::template::load(&ctx.config.templates_dir(), t)?;
    }

    let reg = ctx.registry();
    let held = reg.lock()?;
    let clash = match &source {
        DiskSource::Import(disk, id) => reg.clash(&held, m, Some(disk), Some(id))?,
        DiskSource::Pool(pool, _) => reg.clash(&held, m, Some(&pool.path_for(&m.name)), None)?,
        DiskSource::Instance(_) => reg.clash(&held, m, None, None)?,
    };
    if let Some((other, what)) = clash {
        return Err(Error::invalid(format!("invalid {}: machine {other} already uses it", what.as_str())));
    }
    let machine = match source {
        DiskSource::Import(disk, _) => {
            let machine = m.with_disk(disk, Origin::Imported);
            reg.add(&machine)?;
            machine
        }
        DiskSource::Instance(size) => {
            let machine = m.with_storage(Storage::Instance { size });
            reg.add(&machine)?;
            machine
        }
        DiskSource::Pool(pool, size) => {
            let state_dir = ctx.config.state_dir.path();
            let disk = pool.create(&m.name, size, ctx.config.timeouts.tool(), state_dir)?;
            // A registered name that resolves to the new volume (a link
            // that dangled until now) is the same disk too.
            let clash = match volume::identity(&disk) {
                Some(id) => reg.clash(&held, m, Some(&disk), Some(&id)),
                None => Ok(None),
            };
            let machine = m.with_disk(disk.clone(), Origin::Pool);
            let added = match clash {
                Ok(Some((other, what))) => Err(Error::invalid(format!("invalid {}: machine {other} already uses it", what.as_str()))),
                Ok(None) => reg.add(&machine).map_err(Error::from),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = added {
                // The machine is not registered: neither is its volume.
                let _ = pool.remove(&m.name, &disk, ctx.config.timeouts.tool(), state_dir);
                return Err(e);
            }
            machine
        }
    };
    drop(held);
    let disk = match &machine.storage {
        Storage::Volume { disk, .. } => format!("volume {disk}"),
        Storage::Instance { size } => format!("disk 0 of its instance, {} MiB (made at its first install)", size.mib()),
    };
    Ok(Outcome { human: format!("{}: registered, {disk}\n", machine.name), json: machine_json(&machine) })
}

pub fn remove(ctx: &Ctx, vm: &VmName, purge_volume: bool) -> Result<Outcome> {
    ctx.require_admin()?;
    let reg = ctx.registry();
    let m = reg.get(vm)?;
    let pool = if purge_volume {
        require_pool_volume(&m)?;
        Some(ctx.config.volumes.as_ref().ok_or(VolumeError::NoPool)?)
    } else {
        None
    };
    let vmdir = VmDir::new(ctx.config, vm);
    let locks = ctx.config.locks_dir();
    fsutil::ensure_dir(&locks, 0o700).map_err(|e| Error::failed(format!("cannot create {}: {e}", locks.display())))?;
    let _lock = lock::try_lock(&ctx.config.vm_lock(vm))?;
    let _held = reg.lock()?;
    // As it is now that no other change can be under way.
    let m = reg.get(vm)?;
    if purge_volume {
        require_pool_volume(&m)?;
    }
    let hv = hypervisor::for_config(ctx.config)?;
    if hv.is_running(vm, &vmdir)? {
        return Err(Error::busy(format!("machine {vm} is running; stop it (or cancel its install) first")));
    }
    // The volume goes first: if it cannot be removed, the machine stays
    // registered and the request can be repeated.
    if let Some(pool) = pool {
        pool.remove(vm, m.disk()?, ctx.config.timeouts.tool(), ctx.config.state_dir.path())?;
    }
    // The next machine of this name (another owner's, perhaps) starts with
    // no console of this one.
    hv.forget(vm)?;
    reg.remove(vm)?;
    match std::fs::remove_dir_all(&vmdir.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::failed(format!("machine {vm} unregistered, but {} could not be removed: {e}", vmdir.dir.display()))),
    }
    let purged = match (purge_volume, m.disk()) {
        (true, Ok(disk)) => format!(", volume {disk} removed"),
        _ => String::new(),
    };
    Ok(Outcome {
        human: format!("{vm}: removed{purged}\n"),
        json: obj([("vm", Value::from(vm.as_str())), ("volume_removed", Value::from(purge_volume))]),
    })
}

/// Only a volume the pool made is removed with its machine.
fn require_pool_volume(m: &Machine) -> Result<()> {
    match m.storage {
        Storage::Volume { origin: Origin::Pool, .. } => Ok(()),
        Storage::Volume { origin: Origin::Imported, .. } => Err(VolumeError::Imported(m.name.clone()).into()),
        Storage::Instance { .. } => Err(Error::invalid(format!(
            "machine {} has no volume on this host: its disk is its Ganeti instance's; remove the instance with gnt-instance remove",
            m.name
        ))),
    }
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
