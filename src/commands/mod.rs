//! One module per group of subcommands. Each reads top to bottom: caller →
//! policy → request → (preseed → media → domain) → state.

mod console;
mod images;
mod install;
mod keys;
mod machines;
mod power;
pub(crate) mod status;
mod templates;

use crate::caller::Caller;
use crate::cli::Command;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::policy::{self, Decision};
use crate::registry::{Machine, Registry, RegistryError};
use crate::types::VmName;
use serde_json::{Map, Value};
use std::io::Read;

/// A successful request's result, for people and for the web panel.
#[derive(Debug, Default)]
pub struct Outcome {
    pub human: String,
    pub json: Map<String, Value>,
}

pub struct Ctx<'a> {
    pub config: &'a Config,
    pub caller: &'a Caller,
}

impl Ctx<'_> {
    /// Whether replies may name files on the host: only root there can
    /// read them, so a remote caller is told what it can run instead.
    pub fn shows_host_paths(&self) -> bool {
        matches!(self.caller, Caller::LocalRoot)
    }

    pub fn registry(&self) -> Registry {
        Registry::new(self.config.machines_dir())
    }

    /// The machine, if the caller may manage it. To anyone but an admin an
    /// unknown machine looks the same as someone else's, so machine names
    /// cannot be probed.
    pub fn managed_machine(&self, vm: &VmName) -> Result<Machine> {
        match self.registry().get(vm) {
            Ok(m) if policy::may_manage(self.caller, self.config, &m) == Decision::Allow => Ok(m),
            Err(RegistryError::NotFound(_)) if policy::is_admin(self.caller, self.config) => {
                Err(Error::not_found(format!("machine {vm} is not registered (see `guest-installer list`)")))
            }
            Ok(_) | Err(RegistryError::NotFound(_)) => Err(self.denied_machine(vm)),
            Err(e) => Err(e.into()),
        }
    }

    fn denied_machine(&self, vm: &VmName) -> Error {
        Error::denied(format!("{} may not manage machine {vm} (or it does not exist); ask an admin to add you as an owner", self.caller))
    }

    pub fn require_admin(&self) -> Result<()> {
        match policy::may_administer(self.caller, self.config) {
            Decision::Allow => Ok(()),
            Decision::Deny => Err(Error::denied(format!("{} is not a guest-installer admin", self.caller))),
        }
    }

    pub fn require_local_admin(&self) -> Result<()> {
        match policy::may_administer_locally(self.caller) {
            Decision::Allow => Ok(()),
            Decision::Deny => Err(Error::denied("this subcommand is for root on the host only, not for remote callers")),
        }
    }
}

pub fn help() -> Outcome {
    Outcome { human: crate::cli::HELP.to_owned(), json: obj([("usage", Value::from(crate::cli::HELP))]) }
}

pub fn dispatch(ctx: &Ctx, cmd: &Command, stdin: &mut dyn Read) -> Result<Outcome> {
    // Cluster mode: a machine is a Ganeti instance (src/ganeti/cluster.rs).
    if let Some(cluster) = &ctx.config.cluster {
        if matches!(cmd, Command::List) {
            return crate::ganeti::cluster::list(ctx, cluster);
        }
        if matches!(cmd, Command::Install { .. } | Command::Status { .. } | Command::Cancel { .. } | Command::Start { .. } | Command::Stop { .. } | Command::Reboot { .. }) {
            return crate::ganeti::cluster::dispatch(ctx, cluster, cmd, stdin);
        }
    }
    match cmd {
        Command::Help => Ok(help()),
        Command::Install { vm, hostname, image, template, no_start, no_keys } => {
            let source = match (image, template) {
                (Some(i), _) => install::Source::Image(i),
                (None, Some(t)) => install::Source::Template(t),
                (None, None) => install::Source::Default,
            };
            install::request(ctx, vm, hostname.as_ref(), source, *no_start, *no_keys, stdin)
        }
        Command::Status { vm } => status::status(ctx, vm),
        Command::Cancel { vm } => status::cancel(ctx, vm),
        Command::Settle => status::settle(ctx),
        Command::Start { vm } => power::start(ctx, vm),
        Command::Stop { vm, force } => power::stop(ctx, vm, *force),
        Command::Reboot { vm } => power::reboot(ctx, vm),
        Command::List => status::list(ctx),
        Command::Images => images::list(ctx),
        Command::ImageImport { name, iso, sha256 } => images::import(ctx, name, iso, sha256),
        Command::TemplateBuild { from, name, builder, machine } => {
            templates::build(ctx, from, name.as_ref(), *builder, machine.as_ref())
        }
        Command::Templates => templates::list(ctx),
        Command::MachineAdd(m) => machines::add(ctx, m),
        Command::MachineRemove { vm, purge_volume } => machines::remove(ctx, vm, *purge_volume),
        Command::MachineShow { vm } => machines::show(ctx, vm),
        Command::KeyAdd { key, principal } => keys::add(ctx, key, principal.as_ref()),
        Command::KeyList { principal } => keys::list(ctx, principal.as_ref()),
        Command::KeyRemove { fingerprint, principal } => keys::remove(ctx, fingerprint, principal.as_ref()),
        Command::Ganeti(op) => crate::ganeti::run_os(ctx, *op, stdin),
        Command::ConsoleKeys { user, fingerprint } => console::console_keys(ctx, user, fingerprint),
        Command::ConsoleServe => console::console_serve(ctx),
    }
}

/// Builds a JSON object from pairs.
pub fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
