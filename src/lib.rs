//! guest-installer: builds and starts unattended Debian installs of Xen
//! guests for callers authenticated by remctl.
//!
//! A request reads top to bottom: [`caller`] → [`policy`] → [`cli`]'s
//! validated request → [`preseed`] → [`media`] → [`hypervisor`] →
//! [`state`], with [`error`] mapping every failure to an exit code in one
//! place and [`audit`] recording it.

pub mod audit;
pub mod blocks;
pub mod caller;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod console_door;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod ganeti;
pub mod guest;
pub mod hypervisor;
pub mod image;
pub mod iso9660;
pub mod isolinux;
pub mod jail;
pub mod keystore;
pub mod lifecycle;
pub mod lock;
pub mod netcfg;
pub mod media;
pub mod policy;
pub mod preseed;
pub mod privileges;
pub mod progress;
pub mod registry;
pub mod rootlogin;
pub mod secret;
pub mod sshkey;
pub mod state;
pub mod template;
pub mod statedir;
pub mod steps;
pub mod trust;
pub mod types;
pub mod volume;

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
/// config, runs the command, and leaves an audit record of every request,
/// refused or not: a request that may change anything is recorded before
/// it acts and again with its outcome, so a killed one still leaves a
/// trace. A request refused before the config could be read is recorded
/// on the default syslog socket.
pub fn handle(inv: &Invocation, stdin: &mut dyn Read) -> Result<Outcome, Error> {
    let result = handle_request(inv, stdin);
    // A remote caller cannot run guest-installer itself: messages and
    // replies name the remctl form of the commands they suggest.
    match (result, inv.remote_user) {
        (Err(e), Some(_)) => Err(Error { message: remote_forms(&e.message, &host_name()), ..e }),
        (Ok(o), Some(_)) => Ok(Outcome { human: remote_forms(&o.human, &host_name()), ..o }),
        (r, _) => r,
    }
}

/// `message` with each suggested `guest-installer SUBCOMMAND` as a remote
/// caller runs it: `remctl HOST guest SUBCOMMAND`.
pub fn remote_forms(message: &str, host: &str) -> String {
    message.replace("`guest-installer ", &format!("`remctl {host} guest "))
}

/// This host's name, as remctl clients are most likely to know it.
fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).filter(|h| !h.is_empty()).unwrap_or_else(|| "HOST".into())
}

fn handle_request(inv: &Invocation, stdin: &mut dyn Read) -> Result<Outcome, Error> {
    let caller = Caller::identify(inv.remote_user, inv.real_uid);
    let parsed = cli::parse(&inv.args);
    let who = match &caller {
        Ok(Caller::LocalRoot) => "root".to_owned(),
        Ok(Caller::Remote(p)) => p.to_string(),
        // Never the raw REMOTE_USER: it is not a principal and may be anything.
        Err(caller::CallerError::BadPrincipal) => "(invalid-REMOTE_USER)".to_owned(),
        Err(caller::CallerError::NotRoot) => format!("(local-uid-{})", inv.real_uid),
    };
    let action = match &parsed {
        Ok(cmd) => cmd.action(),
        Err(_) => cli::action_word(&inv.args),
    };
    let target: Option<String> = parsed.as_ref().ok().and_then(|c| c.target()).map(str::to_owned);
    let record = |socket: &std::path::Path, outcome: &str, detail: Option<&str>| {
        audit::record(socket, &audit::Entry { principal: &who, action, target: target.as_deref(), outcome, detail });
    };
    // Read first only to learn where audit records go: a usage or caller
    // error is still reported before a config error.
    let config = Config::load(&Config::location());
    let socket = match &config {
        Ok(c) => c.audit.syslog_socket.path().to_owned(),
        Err(_) => std::path::PathBuf::from(config::DEFAULT_SYSLOG_SOCKET),
    };
    let refuse = |e: Error| {
        record(&socket, e.kind.as_str(), Some(&e.message));
        Err(e)
    };
    let cmd = match parsed {
        // Help is for anyone and needs no config: it must work even when
        // the config is broken.
        Ok(cli::Command::Help) => {
            record(&socket, "ok", None);
            return Ok(commands::help());
        }
        Ok(cmd) => cmd,
        Err(e) => return refuse(e.into()),
    };
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return refuse(e.into()),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => return refuse(e.into()),
    };
    if let Err(e) = statedir::check(config.state_dir.path()) {
        return refuse(e.into());
    }
    if cmd.changes_state() {
        record(&socket, "started", None);
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        commands::dispatch(&Ctx { config: &config, caller: &caller }, &cmd, stdin)
    }))
    .unwrap_or_else(|_| Err(Error::failed("internal error (a bug): please report it")));
    match &result {
        Ok(_) => record(&socket, "ok", None),
        Err(e) => record(&socket, e.kind.as_str(), Some(&e.message)),
    }
    result
}
