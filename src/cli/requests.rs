//! Each subcommand's own parser, from its words to a [`Command`] with
//! every value in its type; separate from the dispatch and shared helpers.

use super::argv::{all, get, one_vm, pairs, required, vm_name};
use super::{usage, value, Command, TemplateFrom, UsageError};
use crate::registry::{NewMachine, VolumeSpec};
use crate::sshkey::{Fingerprint, PublicKey};
use crate::template::{BuilderKind, Suite};
use crate::types::{
    Boot, DiskPath, Hostname, ImageName, Mac, MemoryMib, Network, NetworkFields, Principal, Sha256Hex, TemplateName, Vcpus, VmName,
    VolumeSize,
};
use std::path::PathBuf;

pub(super) fn stop(rest: &[&str]) -> Result<Command, UsageError> {
    match rest {
        [vm] => Ok(Command::Stop { vm: vm_name(Some(vm))?, force: false }),
        [vm, "--force"] | ["--force", vm] => Ok(Command::Stop { vm: vm_name(Some(vm))?, force: true }),
        _ => Err(usage("stop takes VM and optionally --force")),
    }
}

pub(super) fn install(rest: &[&str]) -> Result<Command, UsageError> {
    let vm = vm_name(rest.first())?;
    let mut no_start = false;
    let mut kv = Vec::new();
    for w in &rest[1..] {
        if *w == "--no-start" {
            no_start = true;
        } else {
            kv.push(*w);
        }
    }
    let p = pairs(&kv, &["hostname", "image", "template", "keys"], &[])?;
    if get(&p, "template").is_some() && get(&p, "image").is_some() {
        return Err(usage("give image= or template=, not both"));
    }
    let no_keys = match get(&p, "keys") {
        None => false,
        Some("none") => true,
        Some(_) => return Err(usage("keys= takes only none (leave it out to install your registered SSH keys)")),
    };
    Ok(Command::Install {
        vm,
        hostname: get(&p, "hostname").map(|h| Hostname::parse(h).map_err(value("hostname"))).transpose()?,
        image: get(&p, "image").map(|i| ImageName::parse(i).map_err(value("image"))).transpose()?,
        template: get(&p, "template").map(|t| TemplateName::parse(t).map_err(value("template"))).transpose()?,
        no_start,
        no_keys,
    })
}

pub(super) fn machine(rest: &[&str]) -> Result<Command, UsageError> {
    let Some((&verb, rest)) = rest.split_first() else {
        return Err(usage("machine needs add, remove or show"));
    };
    match verb {
        "add" => machine_add(rest).map(|m| Command::MachineAdd(Box::new(m))),
        "remove" => machine_remove(rest),
        "show" => one_vm(rest).map(|vm| Command::MachineShow { vm }),
        _ => Err(usage("machine needs add, remove or show")),
    }
}

fn machine_remove(rest: &[&str]) -> Result<Command, UsageError> {
    let vm = vm_name(rest.first())?;
    match rest[1..] {
        [] => Ok(Command::MachineRemove { vm, purge_volume: false }),
        ["--purge-volume"] => Ok(Command::MachineRemove { vm, purge_volume: true }),
        _ => Err(usage("machine remove takes VM and at most --purge-volume")),
    }
}

fn machine_add(rest: &[&str]) -> Result<NewMachine, UsageError> {
    let name = vm_name(rest.first())?;
    let p = pairs(
        &rest[1..],
        &["owner", "ip", "netmask", "gateway", "ip6", "gateway6", "nameserver", "mac", "size", "disk", "memory", "vcpus", "image", "template", "boot"],
        &["owner", "nameserver"],
    )?;
    let volume = match (get(&p, "size"), get(&p, "disk")) {
        (Some(s), None) => VolumeSpec::Size(VolumeSize::parse(s).map_err(value("size"))?),
        (None, Some(d)) => VolumeSpec::Disk(DiskPath::parse(d).map_err(value("disk"))?),
        (None, None) => return Err(usage("missing size= (a new volume from the pool; disk= names an existing one, for root on the host)")),
        (Some(_), Some(_)) => return Err(usage("give size= or disk=, not both")),
    };
    let owners = all(&p, "owner")
        .into_iter()
        .map(|o| Principal::parse(o).map_err(value("owner")))
        .collect::<Result<Vec<_>, _>>()?;
    if owners.is_empty() {
        return Err(usage("missing owner= (give at least one)"));
    }
    let network = Network::from_fields(&NetworkFields {
        ip: get(&p, "ip"),
        netmask: get(&p, "netmask"),
        gateway: get(&p, "gateway"),
        ip6: get(&p, "ip6"),
        gateway6: get(&p, "gateway6"),
        nameservers: &all(&p, "nameserver"),
    })
    .map_err(|e| UsageError::Value { field: e.field.to_owned(), rule: e.rule })?;
    Ok(NewMachine {
        name,
        owners,
        network,
        mac: Mac::parse(required(&p, "mac")?).map_err(value("mac"))?,
        volume,
        memory_mib: get(&p, "memory").map(|m| MemoryMib::parse(m).map_err(value("memory"))).transpose()?.unwrap_or(
            MemoryMib::try_from(1024).expect("default memory is in range"),
        ),
        vcpus: get(&p, "vcpus").map(|v| Vcpus::parse(v).map_err(value("vcpus"))).transpose()?.unwrap_or(
            Vcpus::try_from(1).expect("default vcpus is in range"),
        ),
        image: get(&p, "image").map(|i| ImageName::parse(i).map_err(value("image"))).transpose()?,
        template: get(&p, "template").map(|t| TemplateName::parse(t).map_err(value("template"))).transpose()?,
        boot: get(&p, "boot").map(|b| Boot::parse(b).map_err(value("boot"))).transpose()?.unwrap_or_default(),
    })
}

pub(super) fn template(rest: &[&str]) -> Result<Command, UsageError> {
    match rest {
        ["build", first, more @ ..] => {
            let from = match first.strip_prefix("suite=") {
                Some(s) => TemplateFrom::Suite(Suite::parse(s).map_err(value("suite"))?),
                None => TemplateFrom::Image(ImageName::parse(first).map_err(value("image name"))?),
            };
            let p = pairs(more, &["name", "builder", "machine"], &[])?;
            let name = get(&p, "name").map(|n| TemplateName::parse(n).map_err(value("template name"))).transpose()?;
            let builder = get(&p, "builder").map(|b| BuilderKind::parse(b).map_err(value("builder"))).transpose()?.unwrap_or_default();
            let machine = get(&p, "machine").map(|m| VmName::parse(m).map_err(value("machine"))).transpose()?;
            match (builder, &machine) {
                (BuilderKind::Installer, None) => return Err(usage("builder=installer needs machine=VM (the build machine)")),
                (BuilderKind::Mmdebstrap, Some(_)) => return Err(usage("machine= is only for builder=installer")),
                _ => {}
            }
            if builder == BuilderKind::Installer && matches!(from, TemplateFrom::Suite(_)) {
                return Err(usage("builder=installer needs an image (it runs the image's installer), not suite="));
            }
            Ok(Command::TemplateBuild { from, name, builder, machine })
        }
        ["build"] => Err(usage("template build needs IMAGE or suite=S [name=T] [builder=mmdebstrap|installer] [machine=VM]")),
        _ => Err(usage("template needs build")),
    }
}

pub(super) fn image(rest: &[&str]) -> Result<Command, UsageError> {
    match rest {
        ["import", name, iso, more @ ..] => {
            let name = ImageName::parse(name).map_err(value("image name"))?;
            let p = pairs(more, &["sha256"], &[])?;
            let sha256 = Sha256Hex::parse(&required(&p, "sha256")?.to_ascii_lowercase()).map_err(value("sha256"))?;
            Ok(Command::ImageImport { name, iso: PathBuf::from(iso), sha256 })
        }
        ["import", ..] => Err(usage("image import needs NAME ISO sha256=HEX")),
        _ => Err(usage("image needs import")),
    }
}

/// `key add LINE | key list | key remove SHA256:FP`, each with an optional
/// `principal=P` (admins). The key line is one argument holding spaces, so
/// it is told from `principal=` by its first word being a key type, never
/// by position.
pub(super) fn key(rest: &[&str]) -> Result<Command, UsageError> {
    const HOW: &str = "key needs add 'TYPE BASE64 [COMMENT]', list or remove SHA256:FINGERPRINT (admins: principal=P)";
    let Some((&verb, rest)) = rest.split_first() else {
        return Err(usage(HOW));
    };
    let (opts, args): (Vec<&str>, Vec<&str>) = rest.iter().partition(|w| w.starts_with("principal="));
    let p = pairs(&opts, &["principal"], &[])?;
    let principal = get(&p, "principal").map(|v| Principal::parse(v).map_err(value("principal"))).transpose()?;
    match (verb, args.as_slice()) {
        ("add", [line]) => {
            let key = PublicKey::parse_line(line).map_err(|e| usage(format!("the key {e}")))?;
            Ok(Command::KeyAdd { key: Box::new(key), principal })
        }
        ("add", []) => Err(usage("key add needs the public key line as one argument, e.g. \"$(cat ~/.ssh/id_ed25519.pub)\"")),
        ("add", _) => Err(usage("key add takes one key line (quote it: it holds spaces)")),
        ("list", []) => Ok(Command::KeyList { principal }),
        ("remove", [fp]) => Ok(Command::KeyRemove { fingerprint: Fingerprint::parse(fp).map_err(value("fingerprint"))?, principal }),
        ("remove", _) => Err(usage("key remove takes one SHA256:FINGERPRINT (see key list)")),
        _ => Err(usage(HOW)),
    }
}

/// `console-keys USER FINGERPRINT`, as sshd's `%u %f` give them.
pub(super) fn console_keys(rest: &[&str]) -> Result<Command, UsageError> {
    match rest {
        [user, fp] => Ok(Command::ConsoleKeys {
            user: crate::config::UserName::parse(user).map_err(value("user"))?,
            fingerprint: crate::sshkey::Fingerprint::parse(fp).map_err(value("fingerprint"))?,
        }),
        _ => Err(usage("console-keys needs USER FINGERPRINT (sshd's %u %f)")),
    }
}
