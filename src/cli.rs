//! remctl-style argv: `SUBCOMMAND [VM] [key=value ...]`, with `--json`
//! allowed anywhere. Every value is parsed into its type here, at the
//! edge; nothing past this module sees a raw argument.

use crate::types::{
    Boot, DiskPath, Hostname, ImageName, Mac, MemoryMib, Network, Principal, Rule, Sha256Hex, TemplateName, Vcpus,
    VmName, VolumeSize,
};
use crate::registry::{NewMachine, VolumeSpec};
use crate::template::BuilderKind;
use std::ffi::OsString;
use std::path::PathBuf;

pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    #[error("{0}; see `guest-installer help`")]
    Usage(String),
    #[error("invalid {field}: {rule}")]
    Value { field: String, rule: Rule },
}

fn usage(s: impl Into<String>) -> UsageError {
    UsageError::Usage(s.into())
}

fn value(field: &str) -> impl Fn(Rule) -> UsageError + '_ {
    move |rule| UsageError::Value { field: field.to_owned(), rule }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Install {
        vm: VmName,
        hostname: Option<Hostname>,
        image: Option<ImageName>,
        template: Option<TemplateName>,
        no_start: bool,
    },
    Status { vm: VmName },
    Cancel { vm: VmName },
    /// Settle every machine (the package's timer runs it every minute).
    Settle,
    Start { vm: VmName },
    /// `force`: destroy the guest if it has not shut down in time.
    Stop { vm: VmName, force: bool },
    Reboot { vm: VmName },
    List,
    Images,
    MachineAdd(Box<NewMachine>),
    /// `purge_volume`: remove the volume the pool made for it too.
    MachineRemove { vm: VmName, purge_volume: bool },
    MachineShow { vm: VmName },
    ImageImport { name: ImageName, iso: PathBuf, sha256: Sha256Hex },
    /// `machine` is the build machine of `builder=installer` (and only of it).
    TemplateBuild { image: ImageName, name: Option<TemplateName>, builder: BuilderKind, machine: Option<VmName> },
    Templates,
    /// A Ganeti OS definition script (`ganeti create`, ...): root only.
    Ganeti(crate::ganeti::OsOp),
}

impl Command {
    /// The action's name for the audit log.
    pub fn action(&self) -> &'static str {
        match self {
            Command::Help => "help",
            Command::Install { .. } => "install",
            Command::Status { .. } => "status",
            Command::Cancel { .. } => "cancel",
            Command::Settle => "settle",
            Command::Start { .. } => "start",
            Command::Stop { .. } => "stop",
            Command::Reboot { .. } => "reboot",
            Command::List => "list",
            Command::Images => "images",
            Command::MachineAdd(_) => "machine-add",
            Command::MachineRemove { .. } => "machine-remove",
            Command::MachineShow { .. } => "machine-show",
            Command::ImageImport { .. } => "image-import",
            Command::TemplateBuild { .. } => "template-build",
            Command::Templates => "templates",
            Command::Ganeti(op) => op.action(),
        }
    }

    /// True if the request may change anything (then its start is audited
    /// before it acts, as well as its outcome).
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Command::Help | Command::Status { .. } | Command::List | Command::Images | Command::MachineShow { .. } | Command::Templates
        )
    }

    /// The machine (or image) the request is about, for the audit log.
    pub fn target(&self) -> Option<&str> {
        match self {
            Command::Install { vm, .. }
            | Command::Status { vm }
            | Command::Cancel { vm }
            | Command::Start { vm }
            | Command::Stop { vm, .. }
            | Command::Reboot { vm }
            | Command::MachineRemove { vm, .. }
            | Command::MachineShow { vm } => Some(vm.as_str()),
            Command::MachineAdd(m) => Some(m.name.as_str()),
            Command::ImageImport { name, .. } => Some(name.as_str()),
            Command::TemplateBuild { name: Some(name), .. } => Some(name.as_str()),
            Command::TemplateBuild { image, name: None, .. } => Some(image.as_str()),
            Command::Help | Command::Settle | Command::List | Command::Images | Command::Templates | Command::Ganeti(_) => None,
        }
    }
}

/// The action a request that could not be parsed asked for, for the
/// audit log: a subcommand we know (never the caller's own words), or
/// `unknown`.
/// Every first word `parse` knows (a test checks the two agree).
const SUBCOMMANDS: &[&str] = &[
    "help", "install", "status", "cancel", "settle", "start", "stop", "reboot", "list", "images", "templates", "machine",
    "image", "template", "ganeti",
];

pub fn action_word(args: &[OsString]) -> &'static str {
    let mut words = args.iter().filter(|a| *a != "--json").filter_map(|a| a.to_str());
    match (words.next(), words.next()) {
        (Some("machine"), Some("add")) => "machine-add",
        (Some("machine"), Some("remove")) => "machine-remove",
        (Some("machine"), Some("show")) => "machine-show",
        (Some("image"), Some("import")) => "image-import",
        (Some("template"), Some("build")) => "template-build",
        (Some(w), _) => SUBCOMMANDS
            .iter()
            .copied()
            .find(|k| *k == w)
            .unwrap_or("unknown"),
        (None, _) => "unknown",
    }
}

/// `--json` is looked for before anything else so that even a usage error
/// is reported as JSON.
pub fn wants_json(args: &[OsString]) -> bool {
    args.iter().any(|a| a == "--json")
}

/// Parses argv without the program name.
pub fn parse(args: &[OsString]) -> Result<Command, UsageError> {
    if args.len() > MAX_ARGS {
        return Err(usage(format!("too many arguments (at most {MAX_ARGS})")));
    }
    let mut words: Vec<&str> = Vec::with_capacity(args.len());
    for a in args {
        if a.len() > MAX_ARG_BYTES {
            return Err(usage(format!("an argument is longer than {MAX_ARG_BYTES} bytes")));
        }
        let s = a.to_str().ok_or_else(|| usage("arguments must be UTF-8 text"))?;
        if s != "--json" {
            words.push(s);
        }
    }
    let Some((&sub, rest)) = words.split_first() else {
        return Err(usage("no subcommand given"));
    };
    match sub {
        // remctld's help= option runs `help SUBCOMMAND [WORD]`.
        "help" if rest.len() <= 2 => Ok(Command::Help),
        "help" => Err(usage("help takes at most a subcommand")),
        "install" => install(rest),
        "status" => one_vm(rest).map(|vm| Command::Status { vm }),
        "cancel" => one_vm(rest).map(|vm| Command::Cancel { vm }),
        "settle" => no_more(rest).map(|_| Command::Settle),
        "start" => one_vm(rest).map(|vm| Command::Start { vm }),
        "stop" => stop(rest),
        "reboot" => one_vm(rest).map(|vm| Command::Reboot { vm }),
        "list" => no_more(rest).map(|_| Command::List),
        "images" => no_more(rest).map(|_| Command::Images),
        "machine" => machine(rest),
        "image" => image(rest),
        "templates" => no_more(rest).map(|_| Command::Templates),
        "template" => template(rest),
        "ganeti" => crate::ganeti::OsOp::parse(rest)
            .map(Command::Ganeti)
            .ok_or_else(|| usage("ganeti needs create, export, import, rename, verify parameters or variants")),
        _ => Err(usage("unknown subcommand")),
    }
}

fn no_more(rest: &[&str]) -> Result<(), UsageError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(usage("unexpected argument"))
    }
}

fn vm_name(s: Option<&&str>) -> Result<VmName, UsageError> {
    let s = s.ok_or_else(|| usage("missing machine name"))?;
    VmName::parse(s).map_err(value("machine name"))
}

fn one_vm(rest: &[&str]) -> Result<VmName, UsageError> {
    let vm = vm_name(rest.first())?;
    no_more(&rest[1..])?;
    Ok(vm)
}

/// `key=value` words; keys not in `allowed` are errors, and only keys in
/// `repeatable` may be given more than once.
fn pairs<'a>(words: &[&'a str], allowed: &[&str], repeatable: &[&str]) -> Result<Vec<(&'a str, &'a str)>, UsageError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| usage("expected key=value"))?;
        if !allowed.contains(&k) {
            return Err(unknown_key(k, allowed));
        }
        if !repeatable.contains(&k) && out.iter().any(|(seen, _)| *seen == k) {
            return Err(usage(format!("{k}= given twice")));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Names the key only if it is short and printable: it came from the caller.
fn unknown_key(key: &str, allowed: &[&str]) -> UsageError {
    let shown = if key.len() <= 32 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        format!(" {key}=")
    } else {
        String::new()
    };
    usage(format!("unknown key{shown} (allowed: {})", allowed.join(", ")))
}

fn get<'a>(p: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn all<'a>(p: &[(&str, &'a str)], key: &str) -> Vec<&'a str> {
    p.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).collect()
}

fn required<'a>(p: &[(&str, &'a str)], key: &str) -> Result<&'a str, UsageError> {
    get(p, key).ok_or_else(|| usage(format!("missing {key}=")))
}

fn stop(rest: &[&str]) -> Result<Command, UsageError> {
    match rest {
        [vm] => Ok(Command::Stop { vm: vm_name(Some(vm))?, force: false }),
        [vm, "--force"] | ["--force", vm] => Ok(Command::Stop { vm: vm_name(Some(vm))?, force: true }),
        _ => Err(usage("stop takes VM and optionally --force")),
    }
}

fn install(rest: &[&str]) -> Result<Command, UsageError> {
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
    let p = pairs(&kv, &["hostname", "image", "template"], &[])?;
    if get(&p, "template").is_some() && get(&p, "image").is_some() {
        return Err(usage("give image= or template=, not both"));
    }
    Ok(Command::Install {
        vm,
        hostname: get(&p, "hostname").map(|h| Hostname::parse(h).map_err(value("hostname"))).transpose()?,
        image: get(&p, "image").map(|i| ImageName::parse(i).map_err(value("image"))).transpose()?,
        template: get(&p, "template").map(|t| TemplateName::parse(t).map_err(value("template"))).transpose()?,
        no_start,
    })
}

fn machine(rest: &[&str]) -> Result<Command, UsageError> {
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
        &["owner", "ip", "netmask", "gateway", "nameserver", "mac", "size", "disk", "memory", "vcpus", "image", "template", "boot"],
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
    let network = Network::new(
        required(&p, "ip")?,
        required(&p, "netmask")?,
        required(&p, "gateway")?,
        &all(&p, "nameserver"),
    )
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

fn template(rest: &[&str]) -> Result<Command, UsageError> {
    match rest {
        ["build", image, more @ ..] => {
            let image = ImageName::parse(image).map_err(value("image name"))?;
            let p = pairs(more, &["name", "builder", "machine"], &[])?;
            let name = get(&p, "name").map(|n| TemplateName::parse(n).map_err(value("template name"))).transpose()?;
            let builder = get(&p, "builder").map(|b| BuilderKind::parse(b).map_err(value("builder"))).transpose()?.unwrap_or_default();
            let machine = get(&p, "machine").map(|m| VmName::parse(m).map_err(value("machine"))).transpose()?;
            match (builder, &machine) {
                (BuilderKind::Installer, None) => return Err(usage("builder=installer needs machine=VM (the build machine)")),
                (BuilderKind::Mmdebstrap, Some(_)) => return Err(usage("machine= is only for builder=installer")),
                _ => {}
            }
            Ok(Command::TemplateBuild { image, name, builder, machine })
        }
        ["build"] => Err(usage("template build needs IMAGE [name=T] [builder=mmdebstrap|installer] [machine=VM]")),
        _ => Err(usage("template needs build")),
    }
}

fn image(rest: &[&str]) -> Result<Command, UsageError> {
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

pub const HELP: &str = "\
guest-installer: unattended Debian installs of Xen guests

usage (remote callers: remctl HOST guest SUBCOMMAND ...):
  install VM [hostname=H] [image=I | template=T] [--no-start]
                     install VM; the root password (or its $6$/$y$ crypt
                     hash) is read from standard input, one line; with
                     template=T, clone a golden template onto the VM's
                     volume (seconds, not the installer's minutes); with
                     neither, the machine's template, else its image
  status VM          state, image, times and the last console line
  cancel VM          stop an install that has not finished, remove its media
  start VM           run an installed machine from its own disk and kernel
  stop VM [--force]  shut it down cleanly; with --force, destroy it if it
                     has not stopped within the configured time
  reboot VM          ask it to reboot itself
  list               the machines you may manage
  images             installable images
  templates          golden templates (for install template=T)
  help               this text

admin:
  machine add VM owner=P... ip=A netmask=M gateway=G nameserver=N...
              mac=M size=SIZE [memory=MiB] [vcpus=N] [image=I]
              [template=T] [boot=hvm-iso|pv-initrd]
                     SIZE: e.g. 20G (M, G, T); the volume is made in the
                     host's pool. disk=PATH instead imports an existing
                     volume (local root only)
  machine remove VM [--purge-volume]
                     --purge-volume: remove the volume the pool made too
  machine show VM
  image import NAME ISO sha256=HEX      (local root only)
  settle                                (local root only; run every minute
                                        by the package's timer: records
                                        finished installs, removes media,
                                        expires --no-start media)
  template build IMAGE [name=T] [builder=mmdebstrap|installer] [machine=VM]
                                        (local root only; builder=installer
                                        runs our preseeded install in the
                                        registered build machine VM)
  ganeti create|export|import|rename|verify parameters|variants
                                        (local root only: the Ganeti OS
                                        definition's scripts run these)

--json anywhere: one JSON document on stdout, for success and failure.
exit: 0 ok, 1 failed, 2 invalid, 3 denied, 4 not found, 5 busy
";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn the_audit_knows_every_subcommand_parse_knows() {
        for w in SUBCOMMANDS {
            let e = p(&[w]);
            assert!(!matches!(&e, Err(UsageError::Usage(m)) if m == "unknown subcommand"), "{w}");
        }
        assert!(matches!(p(&["frobnicate"]), Err(UsageError::Usage(m)) if m.starts_with("unknown subcommand")));
        assert_eq!(action_word(&[OsString::from("reboot"), OsString::from("vm1 x")]), "reboot");
    }

    #[test]
    fn install_parses_with_json_anywhere() {
        let c = p(&["--json", "install", "web1", "hostname=www", "--no-start"]).unwrap();
        assert_eq!(
            c,
            Command::Install {
                vm: VmName::parse("web1").unwrap(),
                hostname: Some(Hostname::parse("www").unwrap()),
                image: None,
                template: None,
                no_start: true
            }
        );
        assert!(wants_json(&["status".into(), "x".into(), "--json".into()]));
    }

    #[test]
    fn unknown_repeated_and_path_like_arguments_are_refused() {
        for bad in [
            &["install", "web1", "config=/tmp/x"][..],
            &["install", "web1", "--config=/tmp/x"],
            &["install", "web1", "hostname=a", "hostname=b"],
            &["install", "../etc"],
            &["install", "web1", "image=../../etc"],
            &["install", "web1", "template=../x"],
            &["install", "web1", "template=t", "image=i"],
            &["template", "build", "img", "name=a/b"],
            &["template", "build", "img", "suite=sid"],
            &["template", "build", "img", "builder=installer"],
            &["template", "build", "img", "builder=debootstrap", "machine=vm1"],
            &["template", "build", "img", "machine=vm1"],
            &["template", "build", "img", "builder=mmdebstrap", "machine=vm1"],
            &["template", "build", "img", "builder=installer", "machine=../x"],
            &["templates", "x"],
            &["status"],
            &["status", "web1", "extra"],
            &["start"],
            &["start", "web1", "--force"],
            &["stop", "web1", "--now"],
            &["stop", "web1", "--force", "x"],
            &["reboot", "../web1"],
            &["frobnicate"],
            &[],
            &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
              "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01", "disk=/dev/vg/vm2", "disk=/dev/sda"],
            &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
              "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01", "disk=/dev/vg/vm2", "size=20G"],
            &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
              "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01"],
            &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
              "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01", "size=20"],
            &["machine", "add", "vm2", "owner=a@R", "ip=10.0.0.2", "netmask=255.255.255.0", "gateway=10.0.0.1",
              "nameserver=10.0.0.1", "mac=00:16:3e:00:00:01", "size=1G", "size=2G"],
            &["machine", "remove", "vm2", "--purge"],
            &["machine", "remove", "vm2", "--purge-volume", "--purge-volume"],
            &["machine", "remove", "--purge-volume"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ganeti_os_operations_parse() {
        use crate::ganeti::OsOp;
        assert_eq!(p(&["ganeti", "create"]).unwrap(), Command::Ganeti(OsOp::Create));
        assert_eq!(p(&["ganeti", "verify", "parameters"]).unwrap(), Command::Ganeti(OsOp::Verify));
        for bad in [&["ganeti"][..], &["ganeti", "verify"], &["ganeti", "create", "x"], &["ganeti", "destroy"]] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn power_commands_parse() {
        let vm = VmName::parse("web1").unwrap();
        assert_eq!(p(&["start", "web1", "--json"]).unwrap(), Command::Start { vm: vm.clone() });
        assert_eq!(p(&["stop", "web1"]).unwrap(), Command::Stop { vm: vm.clone(), force: false });
        assert_eq!(p(&["stop", "--force", "web1"]).unwrap(), Command::Stop { vm: vm.clone(), force: true });
        assert_eq!(p(&["stop", "web1", "--force"]).unwrap(), Command::Stop { vm: vm.clone(), force: true });
        assert_eq!(p(&["reboot", "web1"]).unwrap(), Command::Reboot { vm });
    }

    #[test]
    fn machine_add_takes_repeated_owners_and_nameservers() {
        let c = p(&["machine", "add", "vm2", "owner=a@R", "owner=b/admin@R", "ip=10.0.0.2", "netmask=255.255.255.0",
                    "gateway=10.0.0.1", "nameserver=10.0.0.1", "nameserver=10.0.0.3", "mac=00:16:3E:00:00:01",
                    "size=20G"]).unwrap();
        let Command::MachineAdd(m) = c else { panic!() };
        assert_eq!(m.owners.len(), 2);
        assert_eq!(m.network.nameservers().len(), 2);
        assert_eq!(m.mac.to_string(), "00:16:3e:00:00:01");
        assert_eq!(m.memory_mib.get(), 1024);
        assert_eq!(m.volume, VolumeSpec::Size(VolumeSize::parse("20G").unwrap()));
        assert_eq!(
            p(&["machine", "remove", "vm2", "--purge-volume"]).unwrap(),
            Command::MachineRemove { vm: VmName::parse("vm2").unwrap(), purge_volume: true }
        );
    }

    #[test]
    fn template_build_takes_a_builder_and_its_machine() {
        let c = p(&["template", "build", "img", "name=t", "builder=installer", "machine=vm1"]).unwrap();
        assert_eq!(
            c,
            Command::TemplateBuild {
                image: ImageName::parse("img").unwrap(),
                name: Some(TemplateName::parse("t").unwrap()),
                builder: BuilderKind::Installer,
                machine: Some(VmName::parse("vm1").unwrap()),
            }
        );
        let Command::TemplateBuild { builder, machine, .. } = p(&["template", "build", "img"]).unwrap() else { panic!() };
        assert_eq!((builder, machine), (BuilderKind::Mmdebstrap, None));
    }

    #[test]
    fn value_errors_name_the_field_not_the_value() {
        let e = p(&["install", "web1", "hostname=bad\nd-i preseed/late_command string x"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("hostname"), "{msg}");
        assert!(!msg.contains("late_command"), "{msg}");
    }
}
