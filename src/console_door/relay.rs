//! The byte relay both sides of the door run: the door between its
//! terminal and `console-serve`, `console-serve` between the door and the
//! guest's console. Bytes pass as they are, never logged or kept; only
//! the detach key is looked for, in what the person types.
//!
//! One poll loop, no threads: each direction holds at most one read's
//! worth of bytes, and a side is read only when what it sent before has
//! been written on, so a stuck reader holds back its writer and nothing
//! piles up in memory.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// `Ctrl-]`, the detach key (as telnet's, virsh's and xl's).
pub const DETACH: u8 = 0x1d;

const CHUNK: usize = 16 * 1024;
/// How long what one side sent may take to reach the other once the
/// session is over (the guest's last words before it stopped).
const LAST_WORDS: Duration = Duration::from_secs(2);

/// One side: where its bytes come from and where the other side's go (one
/// descriptor for a socket, two for stdin and stdout).
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub read: BorrowedFd<'a>,
    pub write: BorrowedFd<'a>,
}

impl<'a> Side<'a> {
    pub fn both(fd: BorrowedFd<'a>) -> Self {
        Side { read: fd, write: fd }
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The near side (the person) closed or failed.
    NearClosed,
    /// The far side (the console) closed or failed: the guest stopped.
    FarClosed,
    /// The near side sent the detach key.
    Detached,
}

/// Bytes waiting to be written to one side.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    at: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }
    fn set(&mut self, data: &[u8]) {
        self.buf.clear();
        self.buf.extend_from_slice(data);
        self.at = 0;
    }
    /// Writes what it can; `false` if the side cannot take any more.
    fn write_to(&mut self, fd: BorrowedFd) -> bool {
        match write(fd, &self.buf[self.at..]) {
            Ok(n) => {
                self.at += n;
                true
            }
            Err(e) => matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock),
        }
    }
}

/// Relays between `near` and `far` until either closes. With `detach`,
/// that byte coming from `near` ends the relay: what came before it is
/// delivered, what came after it is dropped.
pub fn relay(near: Side, far: Side, detach: Option<u8>) -> io::Result<Ended> {
    let mut to_far = Pending::default();
    let mut to_near = Pending::default();
    let mut detached = false;
    let mut buf = vec![0u8; CHUNK];
    loop {
        if detached && to_far.is_empty() {
            return Ok(Ended::Detached);
        }
        // Read a side only once what it sent before is written.
        let near_fd = if to_far.is_empty() { (near.read, libc::POLLIN) } else { (far.write, libc::POLLOUT) };
        let far_fd = if to_near.is_empty() { (far.read, libc::POLLIN) } else { (near.write, libc::POLLOUT) };
        let mut fds = [
            libc::pollfd { fd: near_fd.0.as_raw_fd(), events: near_fd.1, revents: 0 },
            libc::pollfd { fd: far_fd.0.as_raw_fd(), events: far_fd.1, revents: 0 },
        ];
        poll(&mut fds, -1)?;
        let gone = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
        // near → far
        if fds[0].revents != 0 {
            if to_far.is_empty() {
                match read(near.read, &mut buf) {
                    Some(0) | None => return Ok(finish(Ended::NearClosed, &mut to_near, near)),
                    Some(n) => {
                        let data = &buf[..n];
                        match detach.and_then(|d| data.iter().position(|b| *b == d)) {
                            Some(i) => {
                                to_far.set(&data[..i]);
                                detached = true;
                            }
                            None => to_far.set(data),
                        }
                    }
                }
            } else if fds[0].revents & gone != 0 || !to_far.write_to(far.write) {
                return Ok(finish(Ended::FarClosed, &mut to_near, near));
            }
        }
        // far → near
        if fds[1].revents != 0 {
            if to_near.is_empty() {
                match read(far.read, &mut buf) {
                    Some(0) | None => return Ok(finish(Ended::FarClosed, &mut to_near, near)),
                    Some(n) => to_near.set(&buf[..n]),
                }
            } else if fds[1].revents & gone != 0 || !to_near.write_to(near.write) {
                return Ok(Ended::NearClosed);
            }
        }
    }
}

/// Delivers what the far side said last, for a little while at most.
fn finish(how: Ended, to_near: &mut Pending, near: Side) -> Ended {
    let until = Instant::now() + LAST_WORDS;
    while !to_near.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        let mut fds = [libc::pollfd { fd: near.write.as_raw_fd(), events: libc::POLLOUT, revents: 0 }];
        if left.is_zero() || !matches!(poll(&mut fds, left.as_millis() as i32), Ok(1)) || !to_near.write_to(near.write) {
            break;
        }
    }
    how
}

/// `Some(n)` bytes read (0: the end); `None`: the side failed (a pty whose
/// other end closed says EIO: that is its end too).
fn read(fd: BorrowedFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: reads into a buffer we own, of its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Some(n as usize);
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => continue,
            _ => return None,
        }
    }
}

fn write(fd: BorrowedFd, data: &[u8]) -> io::Result<usize> {
    // At most a chunk: poll said there is room, not how much.
    let len = data.len().min(4096);
    // SAFETY: writes from a slice we hold, of at most its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), len) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// poll(2), retried on EINTR; `timeout_ms` -1 waits for ever.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: a slice of valid pollfds, of its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    /// A relay between a "person" and a "console", each a socket pair,
    /// in a thread; returns the person's and the console's ends.
    fn start(detach: Option<u8>) -> (UnixStream, UnixStream, std::thread::JoinHandle<Ended>) {
        let (person, near) = UnixStream::pair().unwrap();
        let (console, far) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || relay(Side::both(near.as_fd()), Side::both(far.as_fd()), detach).unwrap());
        (person, console, t)
    }

    fn read_exact_n(s: &mut UnixStream, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        s.read_exact(&mut v).unwrap();
        v
    }

    #[test]
    fn bytes_pass_both_ways_and_ctrl_bracket_detaches_dropping_what_follows() {
        let (mut person, mut console, t) = start(Some(DETACH));
        person.write_all(b"root\r").unwrap();
        assert_eq!(read_exact_n(&mut console, 5), b"root\r");
        console.write_all(b"Password: ").unwrap();
        assert_eq!(read_exact_n(&mut person, 10), b"Password: ");
        // Ctrl-C and other control keys are the guest's.
        person.write_all(b"\x03\x04\x1a\x1b[A").unwrap();
        assert_eq!(read_exact_n(&mut console, 6), b"\x03\x04\x1a\x1b[A");
        person.write_all(b"ls\x1dnot this").unwrap();
        assert_eq!(t.join().unwrap(), Ended::Detached);
        let mut rest = Vec::new();
        console.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The relay's ends are dropped by its thread: the console reads to its end.
        console.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"ls", "what came before the key is delivered, nothing after it");
    }

    #[test]
    fn without_a_detach_key_the_byte_passes() {
        let (mut person, mut console, t) = start(None);
        person.write_all(b"a\x1db").unwrap();
        assert_eq!(read_exact_n(&mut console, 3), b"a\x1db");
        drop(person);
        assert_eq!(t.join().unwrap(), Ended::NearClosed);
    }

    #[test]
    fn the_console_closing_ends_it_after_its_last_words() {
        let (mut person, mut console, t) = start(Some(DETACH));
        console.write_all(b"reboot: Power down\r\n").unwrap();
        drop(console);
        assert_eq!(t.join().unwrap(), Ended::FarClosed);
        let mut got = Vec::new();
        person.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"reboot: Power down\r\n");
    }

    #[test]
    fn a_flood_from_the_console_arrives_whole_and_in_order() {
        let (mut person, mut console, t) = start(Some(DETACH));
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).filter(|b| *b != DETACH).collect();
        let d2 = data.clone();
        let w = std::thread::spawn(move || {
            console.write_all(&d2).unwrap();
            console
        });
        let got = read_exact_n(&mut person, data.len());
        assert!(got == data);
        drop(w.join().unwrap());
        assert_eq!(t.join().unwrap(), Ended::FarClosed);
    }
}
