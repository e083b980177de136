//! Runs external programs: an argument vector (never a shell), an empty
//! environment but for a fixed PATH, stdin from /dev/null, and a time
//! limit after which the program's whole process group is killed.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;
use wait_timeout::ChildExt;

const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// How much of a program's output we keep: enough for its error message.
const TAIL: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{program} is not installed (not found)")]
    NotFound { program: PathBuf },
    #[error("could not run {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("{program} did not finish within {secs} s and was stopped")]
    TimedOut { program: PathBuf, secs: u64 },
    #[error("{program} failed ({status}): {stderr}")]
    Failed { program: PathBuf, status: ExitStatus, stderr: String },
}

#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

fn tail(mut f: File) -> String {
    let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// Runs `program args...` and waits at most `limit`. Output goes to
/// unlinked temporary files, not pipes: a program that leaves a daemon
/// behind holding its stdout (as `xl create` and `qemu -daemonize` do)
/// cannot make us wait for ever.
pub fn run<S: AsRef<OsStr>>(program: &Path, args: &[S], limit: Duration) -> Result<Output, ExecError> {
    let out = tempfile::tempfile().map_err(|source| ExecError::Spawn { program: program.into(), source })?;
    run_with_stdout(program, args, limit, out)
}

/// Like [`run`], for a tool that parses what a guest wrote: it runs in
/// namespaces of its own (no network, no IPC, private mounts) without any
/// capability and with no way to gain one. It keeps uid 0 only to open
/// root's files it is named (a volume, a scratch file of ours).
pub fn run_confined<S: AsRef<OsStr>>(program: &Path, args: &[S], limit: Duration) -> Result<Output, ExecError> {
    let out = tempfile::tempfile().map_err(|source| ExecError::Spawn { program: program.into(), source })?;
    spawn_and_wait(program, args, limit, out, true)
}

/// Like [`run`], with the program's whole standard output written to
/// `stdout` (for listings longer than the tail [`run`] keeps); the
/// returned `Output::stdout` is still only its tail.
pub fn run_with_stdout<S: AsRef<OsStr>>(program: &Path, args: &[S], limit: Duration, out: File) -> Result<Output, ExecError> {
    spawn_and_wait(program, args, limit, out, false)
}

fn spawn_and_wait<S: AsRef<OsStr>>(program: &Path, args: &[S], limit: Duration, out: File, confined: bool) -> Result<Output, ExecError> {
    let err = tempfile::tempfile().map_err(|source| ExecError::Spawn { program: program.into(), source })?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|source| ExecError::Spawn { program: program.into(), source })?)
        .stderr(err.try_clone().map_err(|source| ExecError::Spawn { program: program.into(), source })?)
        .process_group(0);
    // If we are killed, the tool dies with us rather than going on writing
    // into a request that no longer exists (and holding, between fork and
    // exec, a copy of our lock's descriptor).
    // SAFETY: the closure makes only async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)?;
            if confined {
                crate::privileges::isolate()?;
                crate::privileges::drop_all_capabilities();
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ExecError::NotFound { program: program.into() },
        _ => ExecError::Spawn { program: program.into(), source },
    })?;
    let status = match child.wait_timeout(limit) {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            return Err(ExecError::TimedOut { program: program.into(), secs: limit.as_secs() });
        }
    };
    let output = Output { stdout: tail(out), stderr: tail(err) };
    if status.success() {
        Ok(output)
    } else {
        Err(ExecError::Failed { program: program.into(), status, stderr: last_lines(&output.stderr, 3) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_without_a_shell_and_with_a_clean_environment() {
        std::env::set_var("GI_SHOULD_NOT_LEAK", "1");
        let o = run(Path::new("/usr/bin/env"), &[] as &[&str], Duration::from_secs(5)).unwrap();
        assert!(!o.stdout.contains("GI_SHOULD_NOT_LEAK"));
        let o = run(Path::new("/bin/echo"), &["$(id)", ";", "|"], Duration::from_secs(5)).unwrap();
        assert_eq!(o.stdout, "$(id) ; |\n");
    }

    /// A confined tool has no capability, cannot gain one, and sees no
    /// network but its own loopback (needs root, as the suite does).
    #[test]
    fn a_confined_tool_has_no_capability_and_no_network() {
        let o = run_confined(Path::new("/bin/cat"), &["/proc/self/status", "/proc/self/net/dev"], Duration::from_secs(5)).unwrap();
        let field = |k: &str| o.stdout.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or_default().to_owned();
        assert_eq!(field("CapEff:"), "0000000000000000");
        assert_eq!(field("CapBnd:"), "0000000000000000");
        assert_eq!(field("NoNewPrivs:"), "1");
        // /proc/self/net/dev: two header lines, then "  NAME: counters".
        let dev = o.stdout.split("Inter-|").nth(1).unwrap_or_default();
        let ifaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split_once(':').map(|(i, _)| i.trim())).collect();
        assert_eq!(ifaces, ["lo"], "{}", o.stdout);
    }

    #[test]
    fn missing_failing_and_hanging_programs_are_told_apart() {
        assert!(matches!(
            run(Path::new("/nonexistent/tool"), &["x"], Duration::from_secs(5)),
            Err(ExecError::NotFound { .. })
        ));
        assert!(matches!(run(Path::new("/bin/false"), &[] as &[&str], Duration::from_secs(5)), Err(ExecError::Failed { .. })));
        assert!(matches!(run(Path::new("/bin/sleep"), &["30"], Duration::from_millis(300)), Err(ExecError::TimedOut { .. })));
    }
}
