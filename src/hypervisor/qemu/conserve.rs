//! The supervisor's side of a guest's serial port. What the guest prints
//! goes to the capped console log, or, while someone is attached through
//! the console door, to them alone: the log then records that a session
//! began and ended, never what it showed or what was typed (which reaches
//! the guest, and nothing else).
//!
//! One client at a time (`console-serve` also holds a per-machine lock; a
//! second connection is closed at once). A client that does not keep up is
//! dropped, never waited for: the guest's output is read as fast as it
//! comes whatever the client does, so the log and the guest never stall.

use super::conlog::CappedLog;
use crate::console_door::relay::poll;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};

/// Written to the log when a session begins and ends.
pub const SESSION_BEGAN: &[u8] = b"\r\n[guest-installer: a console session began; what it shows is not logged]\r\n";
pub const SESSION_ENDED: &[u8] = b"\r\n[guest-installer: the console session ended]\r\n";
pub const CLIENT_DROPPED: &[u8] = b"\r\n[guest-installer: the console session was dropped: it did not keep up with the guest]\r\n";

/// How far a client may fall behind the guest before it is dropped.
const MAX_TO_CLIENT: usize = 1 << 20;
/// How much typed input may wait for the guest to take it; past that the
/// client is not read (it waits, the guest does not).
const MAX_TO_GUEST: usize = 64 << 10;

/// Serves the console until the guest's end of `serial` closes (qemu is
/// gone). Returns the client attached then: the caller closes it once the
/// guest counts as stopped, so that the session's end says so.
pub fn run(mut serial: UnixStream, log: &mut CappedLog, listener: Option<UnixListener>) -> Option<UnixStream> {
    if serial.set_nonblocking(true).is_err() {
        return None;
    }
    if let Some(l) = &listener {
        let _ = l.set_nonblocking(true);
    }
    let mut client: Option<UnixStream> = None;
    let mut to_client: Vec<u8> = Vec::new();
    let mut to_guest: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut fds = vec![libc::pollfd {
            fd: serial.as_raw_fd(),
            events: libc::POLLIN | if to_guest.is_empty() { 0 } else { libc::POLLOUT },
            revents: 0,
        }];
        if let Some(l) = &listener {
            fds.push(libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        if let Some(c) = &client {
            let want_in = if to_guest.len() < MAX_TO_GUEST { libc::POLLIN } else { 0 };
            let want_out = if to_client.is_empty() { 0 } else { libc::POLLOUT };
            fds.push(libc::pollfd { fd: c.as_raw_fd(), events: want_in | want_out, revents: 0 });
        }
        if poll(&mut fds, -1).is_err() {
            return client;
        }
        let (serial_ev, listen_ev) = (fds[0].revents, listener.as_ref().map(|_| fds[1].revents).unwrap_or(0));
        let client_ev = client.as_ref().map(|_| fds[fds.len() - 1].revents).unwrap_or(0);

        if serial_ev & libc::POLLOUT != 0 {
            match serial.write(&to_guest) {
                Ok(n) => drop(to_guest.drain(..n)),
                Err(e) if retry(&e) => {}
                Err(_) => to_guest.clear(),
            }
        }
        if serial_ev & !libc::POLLOUT != 0 {
            match serial.read(&mut buf) {
                Ok(0) => return client,
                Ok(n) if client.is_some() => {
                    to_client.extend_from_slice(&buf[..n]);
                    if to_client.len() > MAX_TO_CLIENT {
                        client = None;
                        to_client.clear();
                        note(log, CLIENT_DROPPED);
                    }
                }
                Ok(n) => note(log, &buf[..n]),
                Err(e) if retry(&e) => {}
                Err(_) => return client,
            }
        }
        if client.is_some() && client_ev != 0 {
            let c = client.as_mut().expect("checked");
            let mut gone = false;
            if client_ev & libc::POLLOUT != 0 {
                match c.write(&to_client) {
                    Ok(n) => drop(to_client.drain(..n)),
                    Err(e) if retry(&e) => {}
                    Err(_) => gone = true,
                }
            }
            if !gone && client_ev & !libc::POLLOUT != 0 {
                let room = MAX_TO_GUEST.saturating_sub(to_guest.len()).min(buf.len());
                match c.read(&mut buf[..room.max(1)]) {
                    Ok(0) => gone = true,
                    Ok(n) => to_guest.extend_from_slice(&buf[..n]),
                    Err(e) if retry(&e) => {}
                    Err(_) => gone = true,
                }
            }
            if gone {
                client = None;
                to_client.clear();
                note(log, SESSION_ENDED);
            }
        }
        if listen_ev != 0 {
            if let Some(Ok((c, _))) = listener.as_ref().map(UnixListener::accept) {
                // One at a time: a second is closed at once.
                if client.is_none() && c.set_nonblocking(true).is_ok() {
                    client = Some(c);
                    note(log, SESSION_BEGAN);
                }
            }
        }
    }
}

/// A failed log write (say, a full disk) drops that chunk only.
fn note(log: &mut CappedLog, text: &[u8]) {
    let _ = log.write(text);
}

fn retry(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Rig {
        guest: UnixStream,
        sock: std::path::PathBuf,
        log: std::path::PathBuf,
        t: std::thread::JoinHandle<()>,
        _d: tempfile::TempDir,
    }

    fn rig() -> Rig {
        let d = tempfile::tempdir().unwrap();
        let (ours, guest) = UnixStream::pair().unwrap();
        let sock = d.path().join("console.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let log = d.path().join("console.log");
        let mut l = CappedLog::create(&log, 16 << 20).unwrap();
        let t = std::thread::spawn(move || drop(run(ours, &mut l, Some(listener))));
        Rig { guest, sock, log, t, _d: d }
    }

    fn log_text(r: &Rig) -> String {
        String::from_utf8_lossy(&std::fs::read(&r.log).unwrap()).into_owned()
    }

    /// Waits (bounded) until `f` holds.
    fn eventually(what: &str, f: impl Fn() -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(std::time::Instant::now() < until, "never: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn read_some(c: &mut UnixStream, want: &str) -> String {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(want) {
            let n = c.read(&mut b).unwrap();
            assert!(n > 0, "closed before {want:?}; got {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&b[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[test]
    fn a_session_sees_and_types_and_the_log_keeps_neither() {
        let mut r = rig();
        r.guest.write_all(b"boot messages\r\nweb1 login: ").unwrap();
        eventually("the boot is logged", || log_text(&r).contains("web1 login: "));
        let mut c = UnixStream::connect(&r.sock).unwrap();
        eventually("the session is noted", || log_text(&r).contains("session began"));
        // A second client at the same time is closed at once.
        let mut second = UnixStream::connect(&r.sock).unwrap();
        second.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(second.read(&mut [0u8; 16]).unwrap(), 0);
        c.write_all(b"root\r").unwrap();
        let mut typed = [0u8; 5];
        r.guest.read_exact(&mut typed).unwrap();
        assert_eq!(&typed, b"root\r");
        r.guest.write_all(b"root\r\nPassword: secret-output-42").unwrap();
        read_some(&mut c, "secret-output-42");
        drop(c);
        eventually("the end is noted", || log_text(&r).contains("session ended"));
        r.guest.write_all(b"after the session\r\n").unwrap();
        eventually("output is logged again", || log_text(&r).contains("after the session"));
        let log = log_text(&r);
        assert!(!log.contains("secret-output-42") && !log.contains("root\r"), "{log:?}");
        drop(r.guest);
        r.t.join().unwrap();
    }

    #[test]
    fn a_client_that_does_not_read_is_dropped_and_the_guest_never_waits() {
        let mut r = rig();
        let stuck = UnixStream::connect(&r.sock).unwrap();
        eventually("attached", || log_text(&r).contains("session began"));
        // Far more than the client's socket and our backlog hold; the
        // guest's writes must all go through.
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..64 {
            r.guest.write_all(&chunk).unwrap();
        }
        r.guest.write_all(b"\r\nstill logged\r\n").unwrap();
        eventually("dropped, and logging again", || {
            let l = log_text(&r);
            l.contains("did not keep up") && l.contains("still logged")
        });
        drop(stuck);
        // The guest stops: the supervisor's loop ends and a client sees EOF.
        let mut c = UnixStream::connect(&r.sock).unwrap();
        eventually("attached again", || log_text(&r).matches("session began").count() == 2);
        drop(r.guest);
        r.t.join().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
    }
}
