//! `install VM`: the seed's whole job for one machine.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::guest::Guest;
use crate::hypervisor::Domain;
use crate::lifecycle::{self, clone_error};
use crate::image;
use crate::media;
use crate::preseed::{self, PreseedTemplate};
use crate::keystore::KeyStore;
use crate::registry::Machine;
use crate::rootlogin::{self, RootLogin};
use crate::state::VmState;
use crate::template::{self, clone, TemplateName};
use crate::types::{Hostname, ImageName, VmName};
use crate::fsutil;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// What an install request names, if anything.
pub enum Source<'a> {
    Image(&'a ImageName),
    Template(&'a TemplateName),
    /// The machine's default: its template if it has one, else its image.
    Default,
}

pub fn request(
    ctx: &Ctx,
    vm: &VmName,
    hostname: Option<&Hostname>,
    source: Source,
    no_start: bool,
    no_keys: bool,
    stdin: &mut dyn Read,
) -> Result<Outcome> {
    // Caller and policy first: nothing is read from stdin or written
    // anywhere for a caller who may not manage this machine.
    let machine = ctx.managed_machine(vm)?;
    // A machine whose disk is its Ganeti instance's has nothing to install
    // onto here: refused before stdin is read or anything is written.
    machine.disk()?;
    let hostname = hostname.cloned().unwrap_or_else(|| Hostname::parse(vm.as_str()).expect("a VM name is a host name"));
    let req = Request { ctx, machine: &machine, hostname: &hostname, no_start, no_keys, stdin };
    match source {
        Source::Image(i) => from_image(ctx, req, i),
        Source::Template(t) => from_template(ctx, req, t),
        Source::Default => match (&machine.template, &machine.image) {
            (Some(t), _) => from_template(ctx, req, t),
            (None, Some(i)) => from_image(ctx, req, i),
            (None, None) => Err(Error::invalid(
                "no image or template given and the machine has no default: add image=NAME or template=NAME \
                 (see `guest-installer images` and `guest-installer templates`)",
            )),
        },
    }
}

/// What both install paths are given.
struct Request<'a> {
    ctx: &'a Ctx<'a>,
    machine: &'a Machine,
    hostname: &'a Hostname,
    no_start: bool,
    /// `keys=none`
    no_keys: bool,
    stdin: &'a mut dyn Read,
}

impl Request<'_> {
    /// How root will log in: the caller's registered SSH keys (unless
    /// `keys=none`) and the password line from standard input (empty: no
    /// password, only with keys).
    fn root_login(&mut self) -> Result<RootLogin> {
        let store = KeyStore::new(self.ctx.config.state_dir.path());
        Ok(rootlogin::for_request(self.ctx.caller, &store, self.no_keys, &mut *self.stdin)?)
    }
}

fn from_image(ctx: &Ctx, mut req: Request, image_name: &ImageName) -> Result<Outcome> {
    let config = ctx.config;
    let (machine, hostname, no_start) = (req.machine, req.hostname, req.no_start);
    // The request, fully validated before any file is touched.
    let image = image::load(&config.images_dir(), image_name)?;
    let root = req.root_login()?;
    let preseed_template = PreseedTemplate::read(config.preseed_template.path()).map_err(|e| Error::failed(e.to_string()))?;
    if !no_start {
        check_volume(machine)?;
    }

    // From here on we change things, one request per machine at a time.
    let held = claim(ctx, machine)?;
    let (vmdir, hv) = (&held.vmdir, held.hv.as_ref());

    // A request that will start its guest is on record (`starting`) before
    // anything changes, so a kill at any later point is settled.
    let st = VmState::prepared(Some(image_name.clone()), config.hypervisor.driver, None);
    let st = if no_start { st } else { held.begin_start(st)? };
    let undo = || {
        let _ = vmdir.remove_media();
    };
    let made = (|| -> Result<_> {
        let guest = Guest::of_machine(config, machine, hostname, &root);
        let text = preseed_template.render(&preseed::Values { guest: &guest, mirror: &config.mirror });
        let media = media::build(machine.boot, &image, &text, vmdir)?;
        let domain_config = hv.prepare(&Domain::for_machine(machine, config, &media)?, vmdir).inspect_err(|_| undo())?;
        Ok((media, domain_config))
    })();
    let (media, domain_config) = held.unless_failed(made, &st, no_start)?;
    let domain = Domain::for_machine(machine, config, &media)?;
    let st = record_or_start(&held, &domain, st, no_start, "the installer", undo)?;

    let reply = Reply { held: &held, st: &st, hostname, media: &media, domain_config: &domain_config, root: &root, host_paths: ctx.shows_host_paths() };
    Ok(reply.outcome(
        format!("{} from image {image_name}", if no_start { "prepared (not started)" } else { "installer started" }),
        [("boot", Value::from(machine.boot.as_str()))],
    ))
}

/// What both install paths report.
struct Reply<'a> {
    held: &'a lifecycle::Held<'a>,
    st: &'a VmState,
    hostname: &'a Hostname,
    media: &'a media::Media,
    domain_config: &'a Path,
    root: &'a RootLogin,
    /// Root on the host is shown where the media, domain config and
    /// console log are; a remote caller can use none of them.
    host_paths: bool,
}

impl Reply<'_> {
    /// `headline` follows the VM's name on the first line; `extra` are the
    /// path's own JSON fields.
    fn outcome<const N: usize>(&self, headline: String, extra: [(&str, Value); N]) -> Outcome {
        let (vm, vmdir) = (&self.held.machine.name, &self.held.vmdir);
        let mut human = format!("{vm}: {headline}\n");
        let mut json = obj([
            ("vm", Value::from(vm.as_str())),
            ("state", Value::from(self.st.phase.as_str())),
            ("image", self.st.image.as_ref().map(|i| Value::from(i.as_str())).unwrap_or(Value::Null)),
            ("hostname", Value::from(self.hostname.as_str())),
            ("root_login", self.root.json()),
        ]);
        if self.host_paths {
            let paths = [
                ("media", self.media.path().unwrap_or(&vmdir.dir).to_path_buf()),
                ("domain_config", self.domain_config.to_path_buf()),
                ("console_log", self.held.hv.console_log(vm, vmdir)),
            ];
            host_path_lines(&mut human, &mut json, &paths);
        }
        human.push_str(&format!("  follow: `guest-installer status {vm}`\n  root login: {}\n", self.root.describe()));
        json.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        Outcome { human, json }
    }
}

/// Host paths as text lines ("domain config: ...") and JSON fields
/// ("domain_config"), for root on the host only.
pub(super) fn host_path_lines(human: &mut String, json: &mut serde_json::Map<String, Value>, paths: &[(&str, std::path::PathBuf)]) {
    for (key, path) in paths {
        human.push_str(&format!("  {}: {}\n", key.replace('_', " "), path.display()));
        json.insert((*key).to_owned(), Value::from(path.display().to_string()));
    }
}

/// Takes the machine's lock (busy at once if another request holds it)
/// and refuses while its guest runs: whatever the recorded state says, a
/// running guest is never replaced.
fn claim<'a>(ctx: &'a Ctx, machine: &'a Machine) -> Result<lifecycle::Held<'a>> {
    let held = lifecycle::hold(ctx.config, machine)?;
    held.require_stopped()?;
    Ok(held)
}

/// Records the prepared install (`--no-start`), or starts its guest (see
/// `Held::start_guest`): a guest never runs without a record of it.
fn record_or_start(
    held: &lifecycle::Held,
    domain: &Domain,
    st: VmState,
    no_start: bool,
    what: &str,
    undo: impl Fn(),
) -> Result<VmState> {
    if no_start {
        if let Err(e) = held.vmdir.save(&st) {
            undo();
            return Err(e.into());
        }
        return Ok(st);
    }
    held.start_guest(domain, st, what, undo)
}

/// The machine's volume must exist (a block device or a file) before the
/// installer is pointed at it.
fn check_volume(m: &Machine) -> Result<()> {
    let disk = m.disk()?;
    match crate::volume::kind(disk) {
        Ok(_) => Ok(()),
        Err(crate::volume::VolumeError::Missing(_)) => {
            Err(Error::failed(format!("the volume {disk} of machine {} does not exist; ask an admin to create it", m.name)))
        }
        Err(_) => Err(Error::failed(format!("the volume {disk} of machine {} is not a block device or file; ask an admin", m.name))),
    }
}

/// `install VM template=T`: the fast path. The template's root image is
/// put onto the machine's own volume (a qcow2 overlay for a `*.qcow2`
/// file, a sparse copy otherwise: see `template::clone`), its identity is
/// a seed disk built from the same typed values as the preseed
/// (`vms/VM/identity.img`, 0600), applied by the template's first-boot
/// unit. The guest boots its own kernel through a boot loader. The state is
/// `installing` until the console shows that the identity was applied,
/// then `installed` (see `status`).
fn from_template(ctx: &Ctx, mut req: Request, tname: &TemplateName) -> Result<Outcome> {
    let config = ctx.config;
    let (machine, hostname, no_start) = (req.machine, req.hostname, req.no_start);
    let disk = machine.disk()?;
    let tpl = template::load(&config.templates_dir(), tname)?;
    template::require_clonable(&tpl, &machine.network)?;
    let root = req.root_login()?;
    // Refused before anything is written: a volume that cannot take it.
    clone::check(&tpl.root(), disk).map_err(clone_error)?;
    let started = std::time::Instant::now();

    let held = claim(ctx, machine)?;
    let (vmdir, hv) = (&held.vmdir, held.hv.as_ref());
    clone::remove_overlay_temporaries(disk).map_err(clone_error)?;

    let st = VmState::prepared(tpl.manifest.image.clone(), config.hypervisor.driver, Some(tname.clone()));
    let st = if no_start { st } else { held.begin_start(st)? };
    let made = (|| -> Result<_> {
        let fs_uuid = template::random_uuid().map_err(|e| Error::failed(format!("cannot read random bytes: {e}")))?;
        let guest = Guest::of_machine(config, machine, hostname, &root);
        let seed_text = template::render_seed(&template::Identity { guest: &guest, fs_uuid: &fs_uuid });
        let seed = template::seed_disk(&seed_text).ok_or_else(|| Error::failed("the identity seed is too large"))?;
        fsutil::write_atomic(&vmdir.identity_seed(), &seed, 0o600)
            .map_err(|e| Error::failed(format!("cannot write the clone's identity seed in {}: {e}", vmdir.dir.display())))?;
        let method = match clone::clone_onto(&tpl.root(), disk) {
            Ok(m) => m,
            Err(e) => {
                // A clone refused before writing leaves the volume as it was.
                if e.touched_volume() {
                    let _ = held.discard(Some(&tpl));
                } else {
                    let _ = fsutil::remove_if_exists(&vmdir.identity_seed());
                }
                return Err(clone_error(e));
            }
        };
        // Installer media of an earlier install are of no use to a clone.
        for p in [vmdir.cdrom(), vmdir.initrd()] {
            fsutil::remove_if_exists(&p).map_err(|e| Error::failed(format!("cannot remove {}: {e}", p.display())))?;
        }
        let media = media::Media::Clone { seed: vmdir.identity_seed(), pv: machine.runs_pv() };
        let domain_config = match hv.prepare(&Domain::for_machine(machine, config, &media)?, vmdir) {
            Ok(p) => p,
            Err(e) => {
                let _ = held.discard(Some(&tpl));
                return Err(e.into());
            }
        };
        Ok((method, media, domain_config))
    })();
    let (method, media, domain_config) = held.unless_failed(made, &st, no_start)?;
    let domain = Domain::for_machine(machine, config, &media)?;
    let clone_s = started.elapsed().as_secs_f64();

    let st = record_or_start(&held, &domain, st, no_start, "the clone", || {
        let _ = held.discard(Some(&tpl));
    })?;
    let reply = Reply { held: &held, st: &st, hostname, media: &media, domain_config: &domain_config, root: &root, host_paths: ctx.shows_host_paths() };
    Ok(reply.outcome(
        format!(
            "{} from template {tname} ({} onto {}, with identity, in {:.0} ms)",
            if no_start { "cloned (not started)" } else { "cloned and started" },
            method.as_str(),
            disk,
            clone_s * 1000.0
        ),
        [
            ("template", Value::from(tname.as_str())),
            ("disk", Value::from(disk.as_str())),
            ("clone_method", Value::from(method.as_str())),
            ("clone_s", Value::from(clone_s)),
        ],
    ))
}

