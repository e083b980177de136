//! Runs qemu without root and logs its console under a cap.
//!
//! qemu cannot give up root itself under the sandbox we want: with
//! `-sandbox elevateprivileges=deny` the set*id calls of `-run-with user=`
//! kill it, and with `spawn=deny` so does the fork of `-daemonize` (both
//! tried with qemu 10: SIGSYS). So the driver starts a small supervisor:
//! our own binary, re-executed under a program name (argv[0]) that a
//! remote caller cannot choose. It leaves the request's process tree,
//! starts qemu as the configured user with every file qemu needs already
//! open (descriptors at fixed numbers that the command line names; the
//! state dir stays root's alone), tells the driver whether qemu came up
//! (qemu answers a QMP command only from its main loop, once every device
//! is set up), then copies the guest's console into a capped log (and
//! serves it to the console door: `conserve`) until qemu is gone, reaps
//! it, and exits. It keeps uid 0 (the VM's directory
//! is root's) but no capability.

use super::conlog::CappedLog;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The supervisor's program name.
pub const ARGV0: &str = "guest-installer-qemu-supervisor";

/// Descriptor numbers qemu finds its files at (its command line names them).
pub const FD_DISK: RawFd = 10;
pub const FD_DISK_RO: RawFd = 11;
/// A qcow2 volume's backing file (a clone's template image).
pub const FD_DISK_BACKING: RawFd = 22;
pub const FD_MEDIA: RawFd = 12;
pub const FD_BACKING: RawFd = 13;
pub const FD_KERNEL: RawFd = 14;
pub const FD_INITRD: RawFd = 15;
pub const FD_SERIAL: RawFd = 16;
pub const FD_QMP: RawFd = 17;
pub const FD_TAP: RawFd = 18;
/// The listening control socket (QMP) later requests connect to.
pub const FD_CONTROL: RawFd = 19;
/// The listening socket the console door attaches through (the
/// supervisor's own, never qemu's: see `conserve`).
pub const FD_CONSOLE: RawFd = 23;
/// The supervisor's own ends of the console and QMP sockets.
const FD_SERIAL_OURS: RawFd = 20;
const FD_QMP_OURS: RawFd = 21;
/// Above every slot: where descriptors wait before going to their slot.
const PARKED: RawFd = 64;

/// What the supervisor runs, as the driver hands it over on stdin.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub console_log: PathBuf,
    pub log_max: u64,
    pub pidfile: PathBuf,
    /// qemu's control socket, removed when qemu is gone.
    pub control_socket: PathBuf,
    /// The console door's socket (at `FD_CONSOLE`), removed likewise.
    pub console_socket: PathBuf,
    /// The slots handed to qemu (besides the console and QMP).
    pub slots: Vec<RawFd>,
}

/// Starts the supervisor with `fds` at their slots and waits (at most
/// `limit`) until qemu runs; `Err` says why it does not.
pub fn launch(program: &Path, spec: &Spec, fds: Vec<(RawFd, OwnedFd)>, limit: Duration) -> Result<(), String> {
    let (serial_ours, serial) = UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))?;
    let (qmp_ours, qmp) = UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))?;
    let mut all = fds;
    all.push((FD_SERIAL, serial.into()));
    all.push((FD_QMP, qmp.into()));
    all.push((FD_SERIAL_OURS, serial_ours.into()));
    all.push((FD_QMP_OURS, qmp_ours.into()));
    // Out of the way of the slots first, so no dup2 below overwrites a
    // descriptor still to be moved.
    let parked: Vec<(RawFd, OwnedFd)> =
        all.into_iter().map(|(slot, fd)| park(fd).map(|p| (slot, p))).collect::<io::Result<_>>().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(program);
    cmd.arg0(ARGV0).env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let moves: Vec<(RawFd, RawFd)> = parked.iter().map(|(slot, fd)| (fd.as_raw_fd(), *slot)).collect();
    // SAFETY: only dup2, which is async-signal-safe; its copy at the slot
    // is inherited (dup2 clears close-on-exec).
    unsafe {
        cmd.pre_exec(move || {
            for (from, to) in &moves {
                if libc::dup2(*from, *to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the qemu supervisor: {e}"))?;
    drop(parked);
    let json = serde_json::to_vec(spec).expect("spec serializes");
    let mut stdin = child.stdin.take().expect("piped");
    let _ = stdin.write_all(&json);
    drop(stdin);
    let out = child.stdout.take().expect("piped");
    // It forks at once and its first process exits: the supervisor itself
    // is then init's child, never a zombie of ours.
    let _ = child.wait();
    read_report(out, limit)
}

/// The supervisor's report: `pid N`, then `ok` or `error WHY`.
fn read_report(out: std::process::ChildStdout, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let fd = out.as_raw_fd();
    let mut r = out;
    let mut text = Vec::new();
    let mut sup_pid: Option<i32> = None;
    loop {
        if let Some(line) = text.split(|b| *b == b'\n').next().filter(|_| text.contains(&b'\n')) {
            let line = String::from_utf8_lossy(line).into_owned();
            text.drain(..=line.len());
            if let Some(p) = line.strip_prefix("pid ") {
                sup_pid = p.trim().parse().ok();
            } else if line == "ok" {
                return Ok(());
            } else {
                return Err(line.strip_prefix("error ").unwrap_or(&line).to_owned());
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n == 0 {
            if let Some(p) = sup_pid.filter(|p| *p > 1) {
                // Its session: the supervisor and qemu.
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
            }
            return Err(format!("qemu did not start within {} s and was stopped", limit.as_secs()));
        }
        let mut buf = [0u8; 4096];
        match r.read(&mut buf) {
            Ok(0) => return Err("the qemu supervisor ended without a word".into()),
            Ok(k) if text.len() < 64 << 10 => text.extend_from_slice(&buf[..k]),
            Ok(_) => return Err("the qemu supervisor's report is too long".into()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read the qemu supervisor's report: {e}")),
        }
    }
}

fn park(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor we own; the result is a new one we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, PARKED) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The supervisor's entry: `Some(exit code)` if this process is one.
pub fn main_if_supervisor() -> Option<i32> {
    if std::env::args_os().next()? != ARGV0 {
        return None;
    }
    Some(supervise())
}

fn supervise() -> i32 {
    // Only the driver starts us: root, on behalf of no remote caller.
    if !nix::unistd::getuid().is_root() || std::env::var_os("REMOTE_USER").is_some() {
        eprintln!("{ARGV0}: for guest-installer's own use");
        return 2;
    }
    let mut text = Vec::new();
    let spec: Spec = match io::stdin().take(1 << 20).read_to_end(&mut text).map(|_| serde_json::from_slice(&text)) {
        Ok(Ok(s)) => s,
        _ => return 2,
    };
    // SAFETY: single-threaded here (nothing has started a thread yet).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(_) => return 1,
    }
    let _ = nix::unistd::setsid();
    // SAFETY: fd 1 is the driver's report pipe, ours alone from here.
    let mut report = unsafe { File::from_raw_fd(1) };
    let _ = writeln!(report, "pid {}", std::process::id());
    let code = match run_qemu(&spec, &mut report) {
        Ok(()) => 0,
        Err(why) => {
            let _ = writeln!(report, "error {}", why.replace('\n', " / "));
            1
        }
    };
    let _ = report.into_raw_fd();
    code
}

fn run_qemu(spec: &Spec, report: &mut File) -> Result<(), String> {
    for fd in [FD_SERIAL_OURS, FD_QMP_OURS, FD_CONSOLE] {
        // SAFETY: plain fcntl on an inherited descriptor: qemu must not get our ends.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: inherited at these slots from the driver, owned by us alone.
    let (serial, qmp) = unsafe { (UnixStream::from_raw_fd(FD_SERIAL_OURS), UnixStream::from_raw_fd(FD_QMP_OURS)) };
    // SAFETY: likewise, if the driver handed one over (it is a listening
    // socket then; anything else there is not used).
    let console = unsafe { (libc::fcntl(FD_CONSOLE, libc::F_GETFD) >= 0).then(|| UnixListener::from_raw_fd(FD_CONSOLE)) };
    // The sockets the driver bound for this run: at the end, only these are
    // removed (a later run's, bound at the same names, are not ours).
    let sockets: Vec<(PathBuf, Option<FileId>)> =
        [&spec.control_socket, &spec.console_socket].into_iter().map(|p| (p.clone(), file_id(p))).collect();
    // And this run's uid record, if it is still this run's.
    let uid_file = spec.pidfile.with_file_name(super::uids::UID_FILE);
    let remove_sockets = || {
        for (p, id) in &sockets {
            remove_if_same(p, *id);
        }
        if crate::fsutil::read_text(&uid_file, 32).is_ok_and(|t| t.trim() == spec.uid.to_string()) {
            let _ = std::fs::remove_file(&uid_file);
        }
    };
    let mut log = CappedLog::create(&spec.console_log, spec.log_max)
        .map_err(|e| format!("cannot create the console log {}: {e}", spec.console_log.display()))?;
    let mut qemu = spawn_qemu(spec)?;
    // qemu holds its copies now. (The kernel and initrd copies are not
    // truncated later to save memory: qemu maps the initrd and reads it
    // from there at each boot of the guest.)
    for fd in spec.slots.iter().chain(&[FD_SERIAL, FD_QMP]) {
        // SAFETY: a slot qemu now holds; our copy is no longer needed.
        unsafe { libc::close(*fd) };
    }
    // It only reads a socket and writes root's VM directory, which uid 0
    // may as the directory's owner.
    crate::privileges::drop_all_capabilities();
    let pidfile = write_pidfile(&spec.pidfile, qemu.id());
    let logger = std::thread::spawn(move || super::conserve::run(serial, &mut log, console));
    let ready = qmp_ready(&qmp);
    drop(qmp);
    if let Err(why) = ready {
        let _ = qemu.kill();
        let status = qemu.wait().map(|s| s.to_string()).unwrap_or_default();
        let _ = logger.join();
        remove_sockets();
        remove_pidfile(&spec.pidfile, pidfile.as_ref());
        let said = qemu_said(&spec.console_log);
        return Err(format!("{} did not start ({why}, {status}): {said}", spec.program.display()));
    }
    let _ = writeln!(report, "ok");
    // The driver has its answer; nothing of ours stays on its pipe.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        for fd in [0, 1, 2] {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let attached = logger.join().ok().flatten();
    let _ = qemu.wait();
    // The sockets first: once the pidfile is gone the guest counts as
    // stopped, and nothing of it may be left then.
    remove_sockets();
    remove_pidfile(&spec.pidfile, pidfile.as_ref());
    // Last: a console session ends when the guest counts as stopped.
    drop(attached);
    Ok(())
}

fn spawn_qemu(spec: &Spec) -> Result<std::process::Child, String> {
    // SAFETY: duplicates of our inherited console slot, for qemu's stdout
    // and stderr: its messages go to the console log too.
    let (out, err) = unsafe { (libc::dup(FD_SERIAL), libc::dup(FD_SERIAL)) };
    if out < 0 || err < 0 {
        return Err(format!("cannot set up qemu's output: {}", io::Error::last_os_error()));
    }
    let mut cmd = Command::new(&spec.program);
    // SAFETY: fresh descriptors we own.
    let (out, err) = unsafe { (File::from_raw_fd(out), File::from_raw_fd(err)) };
    cmd.args(&spec.args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let (uid, gid, groups) = (spec.uid, spec.gid, spec.groups.clone());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: async-signal-safe system calls only. The user's groups
    // (kvm, for one) but no other: setgroups before setgid and setuid.
    unsafe {
        cmd.pre_exec(move || {
            let ok = libc::setgroups(groups.len(), groups.as_ptr()) == 0
                && libc::setgid(gid) == 0
                && libc::setuid(uid) == 0
                && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0;
            if !ok {
                return Err(io::Error::last_os_error());
            }
            // We died before the line above: go too.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("{} is not installed (not found)", spec.program.display())
        } else {
            format!("could not run {} as uid {uid}: {e}", spec.program.display())
        }
    })
}

/// `{"return": ...}` to `query-status`: qemu is in its main loop.
fn qmp_ready(qmp: &UnixStream) -> Result<(), String> {
    crate::hypervisor::qmp::Session::start(qmp)?.execute("query-status", None)
}

/// The start of the console log (qemu's own messages), cleaned for an error.
fn qemu_said(log: &Path) -> String {
    let text = crate::console::head(log).unwrap_or_default();
    let start: String = text.chars().take(4096).collect();
    let lines: Vec<String> = start.lines().map(crate::console::clean_line).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// qemu's pid, in a file we hold locked while we run: the driver counts
/// the guest as running until its console log is complete.
fn write_pidfile(path: &Path, pid: u32) -> Option<File> {
    let dir = path.parent()?;
    // Not `.tmp-` (see conlog): a request's cleanup could take it.
    let mut tmp = tempfile::Builder::new().prefix(".qemu-pid-").tempfile_in(dir).ok()?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(tmp.as_file().as_raw_fd(), libc::LOCK_EX) } != 0 {
        return None;
    }
    writeln!(tmp, "{pid}").ok()?;
    tmp.persist(path).ok()
}

/// Whether a supervisor still holds `pidfile` (qemu runs, or its console
/// log is being finished).
pub fn supervising(pidfile: &Path) -> bool {
    let Ok(f) = crate::fsutil::open_nofollow(pidfile) else { return false };
    // SAFETY: flock on a descriptor we own; a shared lock we get is
    // dropped with the descriptor.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}

fn remove_pidfile(path: &Path, ours: Option<&File>) {
    use std::os::unix::fs::MetadataExt;
    let Some(m) = ours.and_then(|f| f.metadata().ok()) else { return };
    remove_if_same(path, Some((m.dev(), m.ino())));
}

/// A file's identity: device and inode.
type FileId = (u64, u64);

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Removes `path` if it is still the file `ours` was: a supervisor that
/// outlived a `destroy` must not remove what the guest's next run made at
/// the same name.
fn remove_if_same(path: &Path, ours: Option<FileId>) {
    if ours.is_some() && file_id(path) == ours {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_runs_files_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("qmp.sock");
        let _mine = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let id = file_id(&p);
        // The next run's socket at the same name.
        std::fs::remove_file(&p).unwrap();
        let _next = std::os::unix::net::UnixListener::bind(&p).unwrap();
        remove_if_same(&p, id);
        assert!(p.exists(), "the next run's socket was removed");
        remove_if_same(&p, file_id(&p));
        assert!(!p.exists());
    }
}
