//! The request a parsed argv stands for, and what the audit log needs to
//! know about it; kept apart from the parsing that builds it.

use crate::registry::NewMachine;
use crate::template::BuilderKind;
use crate::types::{Hostname, ImageName, Sha256Hex, TemplateName, VmName};
use std::path::PathBuf;

/// What a template is built from: an imported installer image (its
/// suite, and for builder=installer its installer), or a suite alone,
/// bootstrapped from the configured mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateFrom {
    Image(ImageName),
    Suite(crate::template::Suite),
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
        /// `keys=none`: the caller's registered SSH keys are not installed.
        no_keys: bool,
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
    TemplateBuild { from: TemplateFrom, name: Option<TemplateName>, builder: BuilderKind, machine: Option<VmName> },
    Templates,
    /// Registers an SSH public key for the caller (or, for admins, `principal`).
    KeyAdd { key: Box<crate::sshkey::PublicKey>, principal: Option<crate::types::Principal> },
    KeyList { principal: Option<crate::types::Principal> },
    KeyRemove { fingerprint: crate::sshkey::Fingerprint, principal: Option<crate::types::Principal> },
    /// A Ganeti OS definition script (`ganeti create`, ...): root only.
    Ganeti(crate::ganeti::OsOp),
    /// sshd's `AuthorizedKeysCommand` for the console door: root only.
    ConsoleKeys { user: crate::config::UserName, fingerprint: crate::sshkey::Fingerprint },
    /// One console door session, on a connection systemd accepted: root only.
    ConsoleServe,
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
            Command::KeyAdd { .. } => "key-add",
            Command::KeyList { .. } => "key-list",
            Command::KeyRemove { .. } => "key-remove",
            Command::Ganeti(op) => op.action(),
            Command::ConsoleKeys { .. } => "console-keys",
            Command::ConsoleServe => "console-serve",
        }
    }

    /// True if the request may change anything (then its start is audited
    /// before it acts, as well as its outcome).
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Command::Help
                | Command::Status { .. }
                | Command::List
                | Command::Images
                | Command::MachineShow { .. }
                | Command::Templates
                | Command::KeyList { .. }
                // Reads the key store only; a session settles as status
                // does, and audits its own start and end with the principal.
                | Command::ConsoleKeys { .. }
                | Command::ConsoleServe
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
            Command::TemplateBuild { from: TemplateFrom::Image(image), name: None, .. } => Some(image.as_str()),
            Command::TemplateBuild { from: TemplateFrom::Suite(suite), name: None, .. } => Some(suite.as_str()),
            Command::KeyAdd { principal, .. } | Command::KeyList { principal } | Command::KeyRemove { principal, .. } => {
                principal.as_ref().map(|p| p.as_str())
            }
            Command::Help | Command::Settle | Command::List | Command::Images | Command::Templates | Command::Ganeti(_) => None,
            Command::ConsoleKeys { .. } | Command::ConsoleServe => None,
        }
    }
}
