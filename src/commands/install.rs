//! `install VM`: the seed's whole job for one machine.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::hypervisor::{self, Domain};
use crate::image;
use crate::lock;
use crate::media;
use crate::preseed;
use crate::registry::Machine;
use crate::secret::CryptHash;
use crate::state::{self, Phase, VmDir, VmState};
use crate::types::{Hostname, ImageName, VmName};
use crate::fsutil;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

pub fn run(
    ctx: &Ctx,
    vm: &VmName,
    hostname: Option<&Hostname>,
    image_name: Option<&ImageName>,
    no_start: bool,
    stdin: &mut dyn Read,
) -> Result<Outcome> {
    let config = ctx.config;
    // Caller and policy first: nothing is read from stdin or written
    // anywhere for a caller who may not manage this machine.
    let machine = ctx.managed_machine(vm)?;

    // The request, fully validated before any file is touched.
    let image_name = image_name
        .or(machine.image.as_ref())
        .ok_or_else(|| Error::invalid("no image given and the machine has no default: add image=NAME (see `guest-installer images`)"))?;
    let image = image::load(&config.images_dir(), image_name)?;
    let root_hash = CryptHash::read_from(stdin).map_err(|rule| Error::invalid(format!("root password on standard input {rule}")))?;
    let hostname = hostname.cloned().unwrap_or_else(|| Hostname::parse(vm.as_str()).expect("a VM name is a host name"));
    let template = fsutil::read_limited(config.preseed_template.path(), MAX_TEMPLATE_BYTES).map_err(|e| {
        Error::failed(format!("cannot read the preseed template {}: {e}", config.preseed_template.path().display()))
    })?;
    let template = String::from_utf8(template).map_err(|_| Error::failed("the preseed template is not UTF-8"))?;
    if !no_start {
        check_volume(&machine)?;
    }

    // From here on we change things, one request per machine at a time.
    let vmdir = VmDir::new(config, vm);
    for d in [config.vms_dir(), config.locks_dir(), vmdir.dir.clone()] {
        fsutil::ensure_dir(&d, 0o700).map_err(|e| Error::failed(format!("cannot create {}: {e}", d.display())))?;
    }
    let _lock = lock::try_lock(&config.vm_lock(vm))?;
    // A request killed mid-way leaves only hidden temporaries; clear them.
    lock::remove_leftovers(&vmdir.dir, &[".build-", ".tmp-"])
        .map_err(|e| Error::failed(format!("cannot clear leftovers in {}: {e}", vmdir.dir.display())))?;
    let hv = hypervisor::for_config(config)?;
    // Whatever the recorded state says, a guest that runs is never replaced.
    if hv.is_running(vm, &vmdir)? {
        return Err(Error::busy(format!("machine {vm} is running; cancel its install (or stop it) first")));
    }

    let text = preseed::render(
        &template,
        &preseed::Values {
            hostname: &hostname,
            domain: &config.domain,
            network: &machine.network,
            root_hash: &root_hash,
            mirror_host: &config.mirror.host,
            mirror_dir: &config.mirror.directory,
        },
    );
    let media = media::build(machine.boot, &image, &text, &vmdir)?;
    let domain = Domain {
        name: vm,
        memory_mib: machine.memory_mib,
        vcpus: machine.vcpus,
        disk: &machine.disk,
        mac: machine.mac,
        bridge: &config.hypervisor.bridge,
        media: &media,
    };
    let domain_config = hv.prepare(&domain, &vmdir).inspect_err(|_| {
        let _ = vmdir.remove_media();
    })?;

    let now = state::now();
    let mut st = VmState {
        phase: Phase::Prepared,
        image: image_name.clone(),
        driver: config.hypervisor.driver,
        prepared_at: now,
        started_at: None,
        finished_at: None,
        reason: None,
    };
    if !no_start {
        if let Err(e) = hv.start(&domain, &vmdir) {
            let err: Error = e.into();
            let _ = vmdir.remove_media();
            st.phase = Phase::Failed;
            st.finished_at = Some(state::now());
            st.reason = Some(err.message.clone());
            vmdir.save(&st)?;
            return Err(Error::failed(format!("starting the installer for {vm} failed: {}", err.message)));
        }
        st.phase = Phase::Installing;
        st.started_at = Some(state::now());
    }
    if let Err(e) = vmdir.save(&st) {
        // The guest must not run with no record of it.
        if !no_start {
            let _ = hv.destroy(vm, &vmdir);
        }
        let _ = vmdir.remove_media();
        return Err(e.into());
    }

    let console = hv.console_log(vm, &vmdir);
    let human = format!(
        "{vm}: {} from image {image_name}\n  media: {}\n  domain config: {}\n  console log: {}\n",
        if no_start { "prepared (not started)" } else { "installer started" },
        media.path().display(),
        domain_config.display(),
        console.display(),
    );
    Ok(Outcome {
        human,
        json: obj([
            ("vm", Value::from(vm.as_str())),
            ("state", Value::from(st.phase.as_str())),
            ("image", Value::from(image_name.as_str())),
            ("hostname", Value::from(hostname.as_str())),
            ("media", Value::from(media.path().display().to_string())),
            ("boot", Value::from(machine.boot.as_str())),
            ("domain_config", Value::from(domain_config.display().to_string())),
            ("console_log", Value::from(console.display().to_string())),
        ]),
    })
}

/// The machine's volume must exist (a block device or a file) before the
/// installer is pointed at it.
fn check_volume(m: &Machine) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let p = Path::new(m.disk.as_str());
    match std::fs::metadata(p) {
        Ok(md) if md.file_type().is_block_device() || md.is_file() => Ok(()),
        Ok(_) => Err(Error::failed(format!("the volume {} of machine {} is not a block device or file; ask an admin", m.disk, m.name))),
        Err(_) => Err(Error::failed(format!("the volume {} of machine {} does not exist; ask an admin to create it", m.disk, m.name))),
    }
}
