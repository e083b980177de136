//! A guest's serial console, attached: one descriptor that gives what the
//! guest prints and takes what is typed, and, under Xen, the `xl console`
//! that holds the console open for as long as the session lasts.

use super::HvError;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Attached {
    fd: OwnedFd,
    /// The program on the other end of a pseudo-terminal (`xl console`):
    /// stopped, with its process group, when the session ends.
    child: Option<Child>,
}

impl Attached {
    /// A console served on a socket (the qemu supervisor's).
    pub fn socket(s: UnixStream) -> Self {
        Attached { fd: s.into(), child: None }
    }

    /// Runs `program args` on a new pseudo-terminal (its controlling
    /// terminal, in a session of its own) and attaches to the terminal's
    /// other end. An argument vector, a clean environment; it runs as long
    /// as the session does, and no longer (see `Drop`).
    pub fn program(program: &Path, args: &[&str]) -> Result<Self, HvError> {
        let fail = |what: &str, e: std::io::Error| HvError::Console(format!("{what}: {e}"));
        let (master, slave) = crate::console_door::tty::openpty().map_err(|e| fail("cannot make a pseudo-terminal", e))?;
        let stdio = |fd: &OwnedFd| fd.try_clone().map(Stdio::from).map_err(|e| fail("cannot make a pseudo-terminal", e));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("TERM", "vt100")
            .current_dir("/")
            .stdin(stdio(&slave)?)
            .stdout(stdio(&slave)?)
            .stderr(stdio(&slave)?);
        // SAFETY: setsid and ioctl, async-signal-safe: the terminal becomes
        // the program's controlling terminal (xl console reads it raw).
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| fail(&format!("cannot run {}", program.display()), e))?;
        drop(slave);
        Ok(Attached { fd: master, child: Some(child) })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let Some(child) = &mut self.child else { return };
        use nix::sys::signal::{killpg, Signal};
        let pg = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = killpg(pg, Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(pg, Signal::SIGKILL);
        let _ = child.wait();
    }
}
