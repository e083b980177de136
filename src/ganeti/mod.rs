//! Ganeti: past one dom0. Two halves:
//!
//! - the OS definition (`/usr/share/ganeti/os/guest-installer`, package
//!   guest-installer-ganeti): its scripts run `guest-installer ganeti
//!   create|export|import|rename|verify`, which read Ganeti's environment
//!   ([`env`]) into our types and clone a golden template onto the
//!   instance's disk ([`os`], [`guestfs`]), stream it ([`stream`]), list
//!   the variants ([`variants`]);
//! - cluster mode (`[cluster] engine = "ganeti"`): the remctl front door
//!   drives `gnt-instance` with that OS definition ([`cluster`]).

pub mod cluster;
pub mod cluster_config;
mod gnt;
pub mod env;
pub mod guestfs;
pub mod os;
pub mod stream;
pub mod variants;

use crate::commands::{obj, Ctx, Outcome};
use crate::error::Result;
use serde_json::Value;
use std::io::{Read, Write};

/// The OS definition's operations (`guest-installer ganeti OP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsOp {
    Create,
    Export,
    Import,
    Rename,
    /// `verify parameters`
    Verify,
    /// Rewrites `variants.list` from the templates present.
    Variants,
}

impl OsOp {
    pub fn parse(words: &[&str]) -> Option<Self> {
        Some(match words {
            ["create"] => OsOp::Create,
            ["export"] => OsOp::Export,
            ["import"] => OsOp::Import,
            ["rename"] => OsOp::Rename,
            ["verify", "parameters"] => OsOp::Verify,
            ["variants"] => OsOp::Variants,
            _ => return None,
        })
    }
    pub fn action(self) -> &'static str {
        match self {
            OsOp::Create => "ganeti-create",
            OsOp::Export => "ganeti-export",
            OsOp::Import => "ganeti-import",
            OsOp::Rename => "ganeti-rename",
            OsOp::Verify => "ganeti-verify",
            OsOp::Variants => "ganeti-variants",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GanetiError {
    #[error("{0}")]
    Env(#[from] env::EnvError),
    #[error("{0}")]
    Template(#[from] crate::template::TemplateError),
    #[error("{0}")]
    Clone(#[from] crate::template::clone::CloneError),
    #[error("{0}")]
    GuestFs(#[from] guestfs::GuestFsError),
    #[error("{0}")]
    Stream(#[from] stream::StreamError),
    #[error("the guest's filesystem: {0}")]
    Guest(String),
    #[error("{0}")]
    Io(String),
    /// A gnt-* program, or what it answered (cluster mode).
    #[error("{0}")]
    Cluster(String),
}

/// Runs one OS definition operation for Ganeti's node daemon: root on the
/// node only, never a remote caller.
pub fn run_os(ctx: &Ctx, op: OsOp, stdin: &mut dyn Read) -> Result<Outcome> {
    ctx.require_local_admin()?;
    let vars = env::Vars::from_env();
    let config = ctx.config;
    // Ganeti's DEBUG_LEVEL (an operation run with --debug): what we were
    // given, to standard error, which Ganeti keeps in its OS log (standard
    // output is export's stream).
    if vars.debug_level().map_err(GanetiError::from)? > 0 {
        for line in vars.debug_lines() {
            eprintln!("guest-installer: debug: {} {line}", op.action());
        }
    }
    let done = |human: String| Ok(Outcome { json: obj([("result", Value::from(human.trim_end()))]), human });
    match op {
        OsOp::Verify => {
            let p = env::verify(&vars).map_err(GanetiError::from)?;
            let given: Vec<&str> = [("root_hash", p.root_hash.is_some()), ("netmask", p.netmask.is_some()), ("gateway", p.gateway.is_some()), ("nameservers", p.nameservers.is_some()), ("ssh_keys", p.ssh_keys.is_some())]
                .into_iter()
                .filter_map(|(n, g)| g.then_some(n))
                .collect();
            done(format!("parameters ok ({})\n", if given.is_empty() { "none given".into() } else { given.join(", ") }))
        }
        OsOp::Create => {
            let c = env::Create::parse(&vars).map_err(GanetiError::from)?;
            done(os::create(config, &c)?)
        }
        OsOp::Rename => {
            let r = env::Rename::parse(&vars).map_err(GanetiError::from)?;
            done(os::rename(config, &r)?)
        }
        OsOp::Variants => {
            let names = variants::refresh(config)?;
            done(format!("{}: {}\n", variants::path(config).display(), if names.is_empty() { "no templates".into() } else { names.join(" ") }))
        }
        OsOp::Export => {
            let t = env::Transfer::parse(&vars, true).map_err(GanetiError::from)?;
            let disk = std::fs::File::open(t.disk.as_str()).map_err(|e| GanetiError::Io(format!("cannot open {}: {e}", t.disk)))?;
            let mut size = t.size_fd.map(size_fd).transpose()?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let n = stream::export(&disk, &mut out, size.as_mut().map(|f| f as &mut dyn Write)).map_err(GanetiError::from)?;
            // Standard output is the stream: the report goes to Ganeti's log.
            eprintln!("guest-installer: exported {} as {n} bytes", t.disk);
            Ok(Outcome::default())
        }
        OsOp::Import => {
            let t = env::Transfer::parse(&vars, false).map_err(GanetiError::from)?;
            let disk = std::fs::OpenOptions::new().write(true).open(t.disk.as_str()).map_err(|e| GanetiError::Io(format!("cannot open {}: {e}", t.disk)))?;
            let mut input = std::io::BufReader::with_capacity(1 << 20, stdin);
            let size = stream::import(&mut input, &disk).map_err(GanetiError::from)?;
            done(format!("imported {size} bytes onto {}\n", t.disk))
        }
    }
}

/// Ganeti's `EXP_SIZE_FD`, checked to be open for writing before use.
fn size_fd(fd: i32) -> std::result::Result<std::fs::File, GanetiError> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let bad = || GanetiError::Io(format!("EXP_SIZE_FD {fd} is not open for writing"));
    let fl = fcntl(fd, FcntlArg::F_GETFL).map_err(|_| bad())?;
    if OFlag::from_bits_truncate(fl) & OFlag::O_ACCMODE == OFlag::O_RDONLY {
        return Err(bad());
    }
    // SAFETY: the descriptor is open (checked above) and Ganeti handed it
    // to us for this one write; we own it from here.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}
