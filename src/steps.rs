//! Progress of a long request (an image import, a template build, an
//! install through Ganeti): a line per step, with the time since the
//! request began, on standard error as it happens. Whoever waits, at a
//! terminal or over remctl (remctld passes standard error on as it is
//! written), sees the request move, while standard output keeps the one
//! result (`--json`: one document).
//!
//! The texts are the program's own: never a secret, and what a guest wrote
//! only after `console::clean_line`.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a request's step lines go; the library takes a `&Steps` so that
/// callers other than the command line can keep them or drop them.
pub struct Steps {
    start: Instant,
    sink: Sink,
}

enum Sink {
    Stderr,
    Silent,
    Kept(Mutex<Vec<String>>),
}

impl Steps {
    /// Lines to standard error, timed from now.
    pub fn stderr() -> Steps {
        Steps { start: Instant::now(), sink: Sink::Stderr }
    }

    /// No lines.
    pub fn silent() -> Steps {
        Steps { start: Instant::now(), sink: Sink::Silent }
    }

    /// Lines kept in memory (see [`Steps::lines`]).
    pub fn kept() -> Steps {
        Steps { start: Instant::now(), sink: Sink::Kept(Mutex::new(Vec::new())) }
    }

    /// Reports the step `text`, one line however it was written.
    pub fn step(&self, text: &str) {
        let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let line = line(self.start.elapsed(), &text);
        match &self.sink {
            // One write per line, flushed at once: a request killed half-way
            // leaves whole lines, and the client sees each as it comes. A
            // closed standard error must not fail the request.
            Sink::Stderr => {
                let mut e = std::io::stderr().lock();
                let _ = e.write_all(format!("{line}\n").as_bytes());
                let _ = e.flush();
            }
            Sink::Silent => {}
            Sink::Kept(lines) => lines.lock().unwrap_or_else(|p| p.into_inner()).push(line),
        }
    }

    /// The lines kept so far (none unless made by [`Steps::kept`]).
    pub fn lines(&self) -> Vec<String> {
        match &self.sink {
            Sink::Kept(lines) => lines.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            _ => Vec::new(),
        }
    }
}

/// `guest-installer: [  12.3 s] TEXT`.
fn line(elapsed: Duration, text: &str) -> String {
    format!("guest-installer: [{:>6.1} s] {text}", elapsed.as_secs_f64())
}

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// `bytes` for a person: `4.0 GiB`, `12.5 MiB`.
pub fn size(bytes: u64) -> String {
    of_unit(bytes, unit(bytes))
}

/// `done` of `total` in the total's unit: `1.2 of 4.0 GiB (30%)`.
pub fn part(done: u64, total: u64) -> String {
    let u = unit(total);
    let pct = if total == 0 { 100 } else { (u128::from(done.min(total)) * 100 / u128::from(total)) as u64 };
    format!("{} of {} ({pct}%)", number(done, u), of_unit(total, u))
}

fn unit(bytes: u64) -> (f64, &'static str) {
    if bytes as f64 >= GIB {
        (GIB, "GiB")
    } else {
        (MIB, "MiB")
    }
}

fn number(bytes: u64, (div, _): (f64, &str)) -> String {
    format!("{:.1}", bytes as f64 / div)
}

fn of_unit(bytes: u64, u: (f64, &str)) -> String {
    format!("{} {}", number(bytes, u), u.1)
}

/// A copy of at least this many bytes also reports each tenth done.
pub const BIG: u64 = 256 << 20;
/// The longest a copy goes on without a line.
pub const EVERY: Duration = Duration::from_secs(5);

/// When a copy under way deserves another line: at each tenth of a big
/// one, and after [`EVERY`] without a line. The end is not reported here
/// (the next step's line says it).
pub struct Meter {
    total: u64,
    tenth: u64,
    next: u64,
    last: Instant,
}

impl Meter {
    pub fn new(total: u64, now: Instant) -> Meter {
        let tenth = if total >= BIG { total / 10 } else { u64::MAX };
        Meter { total, tenth, next: tenth, last: now }
    }

    /// Whether `done` bytes at `now` deserve a line.
    pub fn due(&mut self, done: u64, now: Instant) -> bool {
        if done >= self.total || (done < self.next && now.saturating_duration_since(self.last) < EVERY) {
            return false;
        }
        self.next = (done / self.tenth + 1).saturating_mul(self.tenth);
        self.last = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_program_the_elapsed_time_and_the_step() {
        assert_eq!(line(Duration::from_millis(12_345), "copying"), "guest-installer: [  12.3 s] copying");
        assert_eq!(line(Duration::ZERO, "x"), "guest-installer: [   0.0 s] x");
        assert_eq!(line(Duration::from_secs(3599), "waiting"), "guest-installer: [3599.0 s] waiting");
        assert_eq!(line(Duration::from_secs(123_456), "y"), "guest-installer: [123456.0 s] y");
    }

    #[test]
    fn steps_are_kept_in_order_one_line_each_with_times_that_never_go_back() {
        let s = Steps::kept();
        s.step("first");
        s.step("second\nwith a newline\r\x1b[31m and an escape");
        let lines = s.lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("guest-installer: [") && lines[0].ends_with("] first"), "{lines:?}");
        assert!(lines[1].ends_with("] second with a newline  [31m and an escape"), "{lines:?}");
        let secs = |l: &str| -> f64 { l.split('[').nth(1).unwrap().split(" s]").next().unwrap().trim().parse().unwrap() };
        assert!(secs(&lines[0]) <= secs(&lines[1]));
        assert!(Steps::silent().lines().is_empty());
    }

    #[test]
    fn sizes_are_in_the_totals_unit() {
        assert_eq!(size(4 << 30), "4.0 GiB");
        assert_eq!(size(12 << 20 | 1 << 19), "12.5 MiB");
        assert_eq!(part(1288490189, 4 << 30), "1.2 of 4.0 GiB (30%)");
        assert_eq!(part(5 << 20, 10 << 20), "5.0 of 10.0 MiB (50%)");
        assert_eq!(part(0, 0), "0.0 of 0.0 MiB (100%)");
    }

    #[test]
    fn a_big_copy_reports_each_tenth_and_a_slow_one_every_few_seconds() {
        let t0 = Instant::now();
        let total = 4u64 << 30;
        let mut m = Meter::new(total, t0);
        let mut tenths = 0;
        let mut done = 0;
        while done < total {
            done = (done + (1 << 20)).min(total);
            if m.due(done, t0) {
                tenths += 1;
            }
        }
        assert_eq!(tenths, 9, "each tenth but the end");
        // A small copy: no tenths, but a line after EVERY without one.
        let mut m = Meter::new(10 << 20, t0);
        assert!(!m.due(9 << 20, t0));
        assert!(m.due(9 << 20, t0 + EVERY));
        assert!(!m.due(9 << 20, t0 + EVERY + Duration::from_secs(1)));
        assert!(m.due(9 << 20, t0 + EVERY * 2));
        assert!(!m.due(10 << 20, t0 + EVERY * 10), "the end is the next step's line");
    }
}
