//! guest-installer: builds and starts unattended Debian installs of Xen
//! guests for callers authenticated by remctl.
//!
//! A request reads top to bottom: [`caller`] → [`policy`] → [`cli`]'s
//! validated request → [`preseed`] → [`media`] → [`hypervisor`] →
//! [`state`], with [`error`] mapping every failure to an exit code in one
//! place and [`audit`] recording it.

pub mod audit;
pub mod caller;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod ganeti;
pub mod hypervisor;
pub mod image;
pub mod iso9660;
pub mod isolinux;
pub mod lock;
pub mod media;
pub mod policy;
pub mod preseed;
pub mod progress;
pub mod registry;
pub mod secret;
pub mod state;
pub mod template;
pub mod statedir;
pub mod types;

use caller::Caller;
use commands::{Ctx, Outcome};
use config::Config;
use error::Error;
use std::ffi::{OsStr, OsString};
use std::io::Read;

/// What the process was started with.
pub struct Invocation<'a> {
    pub args: Vec<OsString>,
    pub remote_user: Option<&'a OsStr>,
    pub real_uid: u32,
}

/// Runs one request: identifies the caller, parses the request, loads the
/// config, runs the command and records the outcome in the audit log.
pub fn run(inv: &Invocation, stdin: &mut dyn Read) -> Result<Outcome, Error> {
    let cmd = cli::parse(&inv.args)?;
    if cmd == cli::Command::Help {
        // Help is for anyone and needs no config: it must work even when
        // the config is broken.
        return Ok(commands::help());
    }
    let caller = Caller::identify(inv.remote_user, inv.real_uid)?;
    let config = Config::load(&Config::location())?;
    statedir::check(config.state_dir.path())?;
    let result = commands::run(&Ctx { config: &config, caller: &caller }, &cmd, stdin);
    let principal = match &caller {
        Caller::LocalRoot => "root".to_owned(),
        Caller::Remote(p) => p.to_string(),
    };
    audit::record(
        config.audit.syslog_socket.path(),
        &audit::Entry {
            principal: &principal,
            action: cmd.action(),
            target: cmd.target(),
            outcome: match &result {
                Ok(_) => "ok",
                Err(e) => e.kind.as_str(),
            },
            detail: result.as_ref().err().map(|e| e.message.as_str()),
        },
    );
    result
}
