//! A guest's console log kept under a size cap. A guest decides what it
//! prints and how much: without a cap it could fill the host's disk.
//!
//! The log keeps its start (the kernel's boot and, on a clone, what the
//! identity unit printed: `status` reads the first MiBs) and its latest
//! output (installer progress and dialogs: `status` reads the last MiBs).
//! When an append would take it over the cap, the file is rewritten as its
//! first half, one marker line and the last quarter of the cap, and
//! appends go on from there: a rewrite per quarter-cap of output, never a
//! log over the cap. Each rewrite is a new file renamed over the old, so a
//! reader sees the old log or the new one, never a torn one.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Between the kept start and the kept end, once output was dropped.
pub const MARKER: &[u8] = b"\n[guest-installer: console output dropped here to keep this log under its size limit]\n";

pub struct CappedLog {
    path: PathBuf,
    cap: u64,
    file: File,
    len: u64,
    /// The bytes every rewrite keeps from the start: set at the first one
    /// (the first half and the marker).
    kept_head: Option<u64>,
}

impl CappedLog {
    /// Creates the log at `path` (which must not exist), mode 0600.
    pub fn create(path: &Path, cap: u64) -> io::Result<CappedLog> {
        // The smallest cap the config allows is 1 MiB; the rewrite needs
        // room for the marker between its halves.
        assert!(cap >= 64 * MARKER.len() as u64, "console log cap too small");
        // Read too: a rewrite copies from it.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(CappedLog { path: path.to_owned(), cap, file, len: 0, kept_head: None })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`, rewriting the log first if it would go over the cap.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.len + data.len() as u64 <= self.cap {
            self.file.write_all_at(data, self.len)?;
            self.len += data.len() as u64;
            return Ok(());
        }
        self.rewrite(data)
    }

    /// The log as if `data` were appended, cut to its start, the marker
    /// and its last quarter-cap, in a new file renamed into place.
    fn rewrite(&mut self, data: &[u8]) -> io::Result<()> {
        let total = self.len + data.len() as u64;
        let tail = (self.cap / 4).min(total);
        let dir = self.path.parent().ok_or_else(|| io::Error::other("log path has no parent"))?;
        // Not `.tmp-`: requests clear those under the machine's lock, which
        // the supervisor writing this does not hold.
        let tmp = tempfile::Builder::new().prefix(".qemu-console-").tempfile_in(dir)?;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut out = io::BufWriter::with_capacity(1 << 16, tmp.as_file());
        let head = match self.kept_head {
            Some(h) => h,
            None => self.cap / 2,
        };
        self.copy_range(&mut out, data, 0, head)?;
        if self.kept_head.is_none() {
            out.write_all(MARKER)?;
        }
        self.copy_range(&mut out, data, total - tail, total)?;
        out.flush()?;
        drop(out);
        let kept_head = self.kept_head.unwrap_or(head + MARKER.len() as u64);
        // Only over our own log: if the name is another file now (a later
        // run of the guest, started while this run's supervisor was still
        // finishing), this run's log is done.
        if !self.still_ours() {
            return Err(io::Error::other("the console log was replaced by another run's"));
        }
        let file = tmp.persist(&self.path).map_err(|e| e.error)?;
        self.file = file;
        self.len = kept_head + tail;
        self.kept_head = Some(kept_head);
        Ok(())
    }

    fn still_ours(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }

    /// Copies bytes `from..to` of the log followed by `data`.
    fn copy_range(&self, out: &mut impl Write, data: &[u8], from: u64, to: u64) -> io::Result<()> {
        let mut buf = vec![0u8; 1 << 16];
        let mut pos = from;
        while pos < to.min(self.len) {
            let n = ((to.min(self.len) - pos) as usize).min(buf.len());
            self.file.read_exact_at(&mut buf[..n], pos)?;
            out.write_all(&buf[..n])?;
            pos += n as u64;
        }
        if to > self.len {
            let start = (pos - self.len) as usize;
            out.write_all(&data[start..(to - self.len) as usize])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 64 << 10;

    /// A stream of numbered lines, so any cut shows.
    fn lines(from: usize, n: usize) -> Vec<u8> {
        (from..from + n).flat_map(|i| format!("line {i:08}\n").into_bytes()).collect()
    }

    /// A supervisor that outlived its guest's `destroy` never renames its
    /// rewrite over the log of the guest's next run.
    #[test]
    fn a_rewrite_never_replaces_another_runs_log() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("console.log");
        let mut old = CappedLog::create(&p, CAP).unwrap();
        old.write(&lines(0, 10)).unwrap();
        std::fs::remove_file(&p).unwrap();
        let mut next = CappedLog::create(&p, CAP).unwrap();
        next.write(b"the next run\n").unwrap();
        // The old run goes on printing past its cap: its rewrite is refused.
        assert!(old.write(&lines(0, 10_000)).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"the next run\n");
        let leftovers: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "the refused rewrite left its temporary");
    }

    #[test]
    fn small_logs_are_kept_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("console.log");
        let mut log = CappedLog::create(&p, CAP).unwrap();
        let text = lines(0, 100);
        for c in text.chunks(7) {
            log.write(c).unwrap();
        }
        assert_eq!(std::fs::read(&p).unwrap(), text);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(CappedLog::create(&p, CAP).is_err(), "an existing log is not reused");
    }

    #[test]
    fn endless_output_keeps_the_start_and_the_latest_under_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("console.log");
        let mut log = CappedLog::create(&p, CAP).unwrap();
        let all = lines(0, 200_000); // 3 MiB: many rewrites
        let mut max = 0;
        for c in all.chunks(4093) {
            log.write(c).unwrap();
            max = max.max(std::fs::metadata(&p).unwrap().len());
            assert_eq!(std::fs::metadata(&p).unwrap().len(), log.len());
        }
        assert!(max <= CAP, "log reached {max} bytes");
        let got = std::fs::read(&p).unwrap();
        let head = (CAP / 2) as usize;
        assert_eq!(&got[..head], &all[..head], "the start is kept byte for byte");
        assert_eq!(&got[head..head + MARKER.len()], MARKER);
        let rest = &got[head + MARKER.len()..];
        assert!(rest.len() as u64 >= CAP / 4, "at least a quarter of the cap of recent output");
        assert_eq!(rest, &all[all.len() - rest.len()..], "the end is the latest output");
        assert_eq!(got.windows(MARKER.len()).filter(|w| *w == MARKER).count(), 1, "one marker");
        let leftovers = std::fs::read_dir(d.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");
    }

    #[test]
    fn one_write_larger_than_the_cap_is_cut_too() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("console.log");
        let mut log = CappedLog::create(&p, CAP).unwrap();
        log.write(b"boot\n").unwrap();
        let big = lines(0, 20_000);
        log.write(&big).unwrap();
        let got = std::fs::read(&p).unwrap();
        assert!(got.len() as u64 <= CAP);
        assert!(got.starts_with(b"boot\nline 00000000\n"));
        assert!(got.ends_with(&big[big.len() - 100..]));
    }

    #[test]
    fn a_reader_holding_the_old_log_sees_it_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("console.log");
        let mut log = CappedLog::create(&p, CAP).unwrap();
        log.write(&lines(0, 4000)).unwrap();
        let before = std::fs::read(&p).unwrap();
        let reader = File::open(&p).unwrap();
        log.write(&lines(4000, 4000)).unwrap();
        let mut held = Vec::new();
        io::Read::read_to_end(&mut &reader, &mut held).unwrap();
        assert_eq!(held, before, "a rewrite does not change the file a reader has open");
    }
}
