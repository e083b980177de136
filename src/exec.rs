//! Runs external programs: an argument vector (never a shell), an empty
//! environment but for a fixed PATH, stdin from /dev/null, and a time
//! limit after which the program's whole process group is killed.

use crate::jail::{Given, Jail};
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
/// an empty world of its own (`jail`) that holds only /usr and what it is
/// `given`, each at the path `Given::inside` names (the arguments refer
/// to them by those paths).
pub fn run_confined<S: AsRef<OsStr>>(program: &Path, args: &[S], given: &[Given], limit: Duration) -> Result<Output, ExecError> {
    let spawn_err = |source| ExecError::Spawn { program: program.into(), source };
    let jail = Jail::prepare(program, given).map_err(spawn_err)?;
    let out = tempfile::tempfile().map_err(spawn_err)?;
    spawn_and_wait(program, args, limit, out, Some(jail))
}

/// Like [`run`], with the program's whole standard output written to
/// `stdout` (for listings longer than the tail [`run`] keeps); the
/// returned `Output::stdout` is still only its tail.
pub fn run_with_stdout<S: AsRef<OsStr>>(program: &Path, args: &[S], limit: Duration, out: File) -> Result<Output, ExecError> {
    spawn_and_wait(program, args, limit, out, None)
}

fn spawn_and_wait<S: AsRef<OsStr>>(program: &Path, args: &[S], limit: Duration, out: File, jail: Option<Jail>) -> Result<Output, ExecError> {
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
            if let Some(jail) = &jail {
                jail.enter()?;
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

    /// A device for a confined run: a file of `mode`, group `gid`.
    fn device(dir: &Path, mode: u32, gid: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("disk.img");
        std::fs::write(&p, b"the disk").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
        p
    }

    fn confined(program: &str, args: &[&str], given: &[Given]) -> Result<Output, ExecError> {
        run_confined(Path::new(program), args, given, Duration::from_secs(20))
    }

    /// A confined tool's world is /usr (read-only), the root's links into
    /// it, and what it was given: no /proc, /dev, /etc/passwd, /tmp or the
    /// host's other files (needs root, as the suite does).
    #[test]
    fn a_confined_tool_sees_only_usr_and_what_it_is_given() {
        let d = tempfile::tempdir().unwrap();
        let disk = device(d.path(), 0o600, 0);
        let given = [Given::Device { host: &disk, name: "disk" }, Given::Data { name: "note", bytes: b"hello" }];
        let o = confined("/usr/bin/ls", &["-A", "/"], &given).unwrap();
        let names: Vec<&str> = o.stdout.lines().collect();
        for n in &names {
            assert!(["usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32", "etc", "disk", "note"].contains(n), "{n} in {names:?}");
        }
        assert!(names.contains(&"usr") && names.contains(&"disk") && names.contains(&"note"), "{names:?}");
        assert_eq!(confined("/usr/bin/ls", &["-A", "/etc"], &given).unwrap().stdout.trim(), "ld.so.cache");
        assert_eq!(confined("/usr/bin/cat", &["/note", "/disk"], &given).unwrap().stdout, "hellothe disk");
        // The device is writable; /usr and the root are not.
        confined("/usr/bin/dd", &["if=/note", "of=/disk", "conv=notrunc", "status=none"], &given).unwrap();
        assert_eq!(std::fs::read(&disk).unwrap(), b"helloisk");
        assert!(confined("/usr/bin/touch", &["/usr/gi-test"], &given).is_err());
        assert!(confined("/usr/bin/touch", &["/new"], &given).is_err());
        assert!(!Path::new("/usr/gi-test").exists());
        // A tool outside /usr could not be seen: refused before it runs.
        assert!(matches!(confined("/nonexistent/tool", &[], &given), Err(ExecError::Spawn { .. })));
    }

    /// It holds no capability and cannot gain one, has no way out through
    /// a socket or a new namespace, and runs as nobody where the device's
    /// mode lets the device's group write it.
    #[test]
    fn a_confined_tool_has_no_privilege_no_socket_and_the_least_user_the_device_allows() {
        let d = tempfile::tempdir().unwrap();
        let disk = device(d.path(), 0o600, 0);
        let given = [Given::Device { host: &disk, name: "disk" }];
        let dump = confined("/usr/bin/setpriv", &["--dump"], &given).unwrap().stdout;
        assert!(dump.contains("no_new_privs: 1"), "{dump}");
        assert!(dump.contains("Capability bounding set: [none]"), "{dump}");
        assert!(dump.contains("uid: 0\n"), "{dump}");
        // uid 0 without CAP_CHOWN cannot give its own file away.
        assert!(confined("/usr/bin/chown", &["1", "/disk"], &given).is_err());
        // Seccomp: no socket (its loopback would otherwise do), no
        // namespace of its own.
        let py = confined("/usr/bin/python3", &["-c", "import socket\ntry:\n socket.socket()\nexcept PermissionError:\n print('refused')"], &given).unwrap();
        assert_eq!(py.stdout.trim(), "refused");
        let e = confined("/usr/bin/unshare", &["--user", "/usr/bin/true"], &given).unwrap_err().to_string();
        assert!(e.contains("Operation not permitted"), "{e}");
        // A disk its group (not root's) may write: the tool is nobody in it.
        let disk = device(d.path(), 0o660, 6);
        let given = [Given::Device { host: &disk, name: "disk" }, Given::Data { name: "note", bytes: b"x" }];
        assert_eq!(confined("/usr/bin/id", &["-u"], &given).unwrap().stdout.trim(), "65534");
        assert_eq!(confined("/usr/bin/id", &["-G"], &given).unwrap().stdout.trim(), "6");
        // ...and still reads what it was handed and writes the disk.
        confined("/usr/bin/dd", &["if=/note", "of=/disk", "conv=notrunc", "status=none"], &given).unwrap();
        assert_eq!(std::fs::read(&disk).unwrap(), b"xhe disk");
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
