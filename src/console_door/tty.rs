//! Terminals: the door's raw mode (keys reach the guest as typed: Ctrl-C
//! is the guest's, not a signal to the door) and the pseudo-terminal
//! `xl console` runs on.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A terminal put into raw mode; its old mode comes back on drop.
pub struct RawMode {
    fd: RawFd,
    old: libc::termios,
}

impl RawMode {
    /// Raw mode on `fd` if it is a terminal; `None` (nothing changed) if not.
    pub fn enable(fd: BorrowedFd) -> io::Result<Option<RawMode>> {
        let fd = fd.as_raw_fd();
        // SAFETY: isatty, tcgetattr and tcsetattr on a descriptor we were
        // given, with a termios we own.
        unsafe {
            if libc::isatty(fd) != 1 {
                return Ok(None);
            }
            let mut old: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut old) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut raw = old;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Some(RawMode { fd, old }))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the mode read from this same descriptor.
        unsafe { libc::tcsetattr(self.fd, libc::TCSAFLUSH, &self.old) };
    }
}

/// A new pseudo-terminal: (master, slave), both close-on-exec.
pub fn openpty() -> io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave): (libc::c_int, libc::c_int) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into our variables; the
    // name, termios and winsize arguments may be null.
    let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created and ours alone.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&m, &s] {
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((m, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn raw_mode_is_set_and_restored_and_a_pipe_is_left_alone() {
        let (_m, s) = openpty().unwrap();
        let mode = |fd: &OwnedFd| {
            // SAFETY: tcgetattr into a termios we own.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0);
                t.c_lflag
            }
        };
        let before = mode(&s);
        assert_ne!(before & libc::ISIG, 0, "a new terminal makes signals of Ctrl-C");
        let raw = RawMode::enable(s.as_fd()).unwrap().expect("a terminal");
        assert_eq!(mode(&s) & (libc::ISIG | libc::ICANON | libc::ECHO), 0, "raw: no signals, no line editing, no echo");
        drop(raw);
        assert_eq!(mode(&s), before);
        let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(RawMode::enable(r.as_fd()).unwrap().is_none());
    }
}
