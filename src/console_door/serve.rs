//! `console-serve`: the root side of the console door. systemd starts one
//! per connection to the console socket (`Accept=yes`), the connection on
//! stdin and stdout.
//!
//! Nothing the connection says is believed until the kernel says who
//! made it: only a process of the console account (`SO_PEERCRED`), and
//! that account runs nothing but the door, whose principal comes from
//! the forced command `console-keys` gave sshd for the verified key. The
//! request is then parsed into types and goes through the same policy as
//! a remctl request (owners and admins of the machine). A session holds
//! the machine's console lock (a second one gets `busy`), never the
//! machine's request lock (`stop`, `start` and `status` work during it).
//! It is audited when it begins and when it ends, with its length; what
//! flows is never looked at but for the detach key.

use super::protocol::{self, Request};
use super::relay::{self, Ended, Side, DETACH};
use crate::audit;
use crate::caller::Caller;
use crate::commands::Ctx;
use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::hypervisor::{self, attach::Attached, Hypervisor};
use crate::lifecycle;
use crate::lock;
use crate::registry::Machine;
use crate::state::{Phase, VmDir};
use crate::types::{Principal, VmName};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long the door has to send its request.
const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// A session that took place.
#[derive(Debug)]
pub struct Session {
    pub principal: Principal,
    pub vm: VmName,
    pub seconds: f64,
    /// How it ended: `detached`, `guest-stopped`, `console-closed`, `client-left`.
    pub ended: &'static str,
}

/// Serves one connection. A refusal is sent to the door as its answer
/// line, audited with the principal if one was asked for, and returned.
pub fn serve(config: &Config, conn: &UnixStream) -> Result<Session> {
    let result = serve_inner(config, conn);
    let _ = conn.shutdown(std::net::Shutdown::Both);
    result
}

fn serve_inner(config: &Config, conn: &UnixStream) -> Result<Session> {
    let refuse = |e: Error| {
        let _ = conn.set_write_timeout(Some(REQUEST_WAIT));
        let _ = (&*conn).write_all(protocol::error_line(&e).as_bytes());
        e
    };
    check_peer(config, conn).map_err(refuse)?;
    let req = read_request(conn).map_err(refuse)?;
    let record = |outcome: &str, detail: Option<&str>| {
        audit::record(
            config.audit.syslog_socket.path(),
            &audit::Entry { principal: req.principal.as_str(), action: "console", target: Some(req.vm.as_str()), outcome, detail },
        )
    };
    let (machine, hv, attached, _session_lock) = match open(config, &req) {
        Ok(x) => x,
        Err(e) => {
            record(e.kind.as_str(), Some(&e.message));
            return Err(refuse(e));
        }
    };
    record("started", None);
    let vm = &machine.name;
    let banner = format!("{}[guest-installer: the console of {vm}; Ctrl-] detaches]\r\n", protocol::ok_line());
    let started = Instant::now();
    let ended = match (&*conn).write_all(banner.as_bytes()) {
        Ok(()) => relay::relay(Side::both(conn.as_fd()), Side::both(attached.fd()), Some(DETACH)),
        Err(e) => Err(e),
    };
    drop(attached);
    let seconds = started.elapsed().as_secs_f64();
    let vmdir = VmDir::new(config, vm);
    let (ended, note) = match ended {
        Ok(Ended::Detached) => ("detached", format!("detached from the console of {vm}")),
        Ok(Ended::FarClosed) if still_running(hv.as_ref(), vm, &vmdir) => {
            ("console-closed", format!("the console of {vm} closed (the guest still runs; attach again)"))
        }
        Ok(Ended::FarClosed) => ("guest-stopped", format!("the console of {vm} closed: the guest stopped")),
        Ok(Ended::NearClosed) | Err(_) => ("client-left", String::new()),
    };
    if !note.is_empty() {
        let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = (&*conn).write_all(format!("\r\n[guest-installer: {note}]\r\n").as_bytes());
    }
    record("ok", Some(&format!("session of {seconds:.1} s, ended: {ended}")));
    Ok(Session { principal: req.principal, vm: machine.name.clone(), seconds, ended })
}

/// Whether the guest runs on after its console closed. The drivers close
/// it once the guest counts as stopped; a moment's grace all the same.
fn still_running(hv: &dyn Hypervisor, vm: &VmName, vmdir: &VmDir) -> bool {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        match hv.is_running(vm, vmdir) {
            Ok(true) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            Ok(running) => return running,
            Err(_) => return false,
        }
    }
}

/// The connection must come from a process of the console account.
fn check_peer(config: &Config, conn: &UnixStream) -> Result<()> {
    let account = config.console.account.as_str();
    let uid = nix::unistd::User::from_name(account)
        .ok()
        .flatten()
        .ok_or_else(|| Error::failed(format!("the console account {account} (console.account) does not exist")))?
        .uid
        .as_raw();
    let peer = peer_uid(conn).map_err(|e| {
        Error::invalid(format!("console-serve serves a connection to the console socket on its standard input, which is not one ({e})"))
    })?;
    if peer != uid {
        return Err(Error::denied(format!("only the console door (user {account}) may use the console service")));
    }
    Ok(())
}

/// The uid of the process that connected (the kernel's word, not the peer's).
pub fn peer_uid(conn: &UnixStream) -> io::Result<u32> {
    // SAFETY: getsockopt into a ucred we own, with its size.
    unsafe {
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        let r = libc::getsockopt(conn.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut cred as *mut libc::ucred).cast(), &mut len);
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cred.uid)
    }
}

/// The request line, read a byte at a time (what follows is the console's).
fn read_request(conn: &UnixStream) -> Result<Request> {
    let bad = |why: &str| Error::invalid(format!("the console door's request could not be read: {why}"));
    conn.set_read_timeout(Some(REQUEST_WAIT)).map_err(|e| bad(&e.to_string()))?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match (&*conn).read(&mut b) {
            Ok(0) => return Err(bad("the connection closed")),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) if line.len() < protocol::MAX_LINE => line.push(b[0]),
            Ok(_) => return Err(bad("it is too long")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad(&e.to_string())),
        }
    }
    conn.set_read_timeout(None).map_err(|e| bad(&e.to_string()))?;
    let line = std::str::from_utf8(&line).map_err(|_| bad("it is not text"))?;
    Request::parse(line).map_err(bad)
}

type Opened = (Machine, Box<dyn Hypervisor>, Attached, lock::Lock);

/// Policy, then the machine's install, then its guest, then the console
/// lock, then the console itself.
fn open(config: &Config, req: &Request) -> Result<Opened> {
    let caller = Caller::Remote(req.principal.clone());
    let ctx = Ctx { config, caller: &caller };
    let machine = ctx.managed_machine(&req.vm)?;
    let vm = &machine.name;
    if config.cluster.is_some() {
        return Err(Error::invalid(format!(
            "the console door does not serve cluster mode; {vm}'s console is on its Ganeti node (gnt-instance console)"
        )));
    }
    require_installed(config, &machine)?;
    let vmdir = VmDir::new(config, vm);
    let hv = hypervisor::for_config(config)?;
    if !hv.is_running(vm, &vmdir)? {
        return Err(Error::invalid(format!("machine {vm} is not running; start it first")));
    }
    let locks = config.locks_dir();
    crate::fsutil::ensure_dir(&locks, 0o700).map_err(|e| Error::failed(format!("cannot create {}: {e}", locks.display())))?;
    let session = lock::try_lock(&config.console_lock(vm)).map_err(|e| match e {
        lock::LockError::Held => Error::busy(format!(
            "someone is attached to the console of {vm}; one session at a time (it ends when they detach or the guest stops)"
        )),
        e => e.into(),
    })?;
    let attached = hv.attach_console(vm, &vmdir)?;
    Ok((machine, hv, attached, session))
}

/// A console is for an installed machine: an install's own console is the
/// installer's (and its log is what `status` follows). Settled first, as
/// `status` does, so a clone whose identity just applied counts as
/// installed; if another request holds the machine's lock, its record
/// decides.
fn require_installed(config: &Config, machine: &Machine) -> Result<()> {
    let vm = &machine.name;
    match lifecycle::hold_recorded(config, machine) {
        Ok(Some(held)) => held.require_installed().map(|_| ()),
        Ok(None) => Err(lifecycle::nothing_installed(vm)),
        Err(e) if e.kind == Kind::Busy => match VmDir::new(config, vm).load()? {
            Some(st) if st.phase == Phase::Installed => Ok(()),
            Some(st) if matches!(st.phase, Phase::Prepared | Phase::Starting | Phase::Installing) => {
                Err(Error::busy(format!("machine {vm} has an install that has not finished ({})", st.phase.as_str())))
            }
            _ => Err(lifecycle::nothing_installed(vm)),
        },
        Err(e) => Err(e),
    }
}
