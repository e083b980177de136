//! The progress lines a long request writes on standard error
//! (`guest-installer: [  12.3 s] TEXT`, src/steps.rs).

/// Every line of `stderr` as (seconds, text), asserting that each is a
/// step line and that the times never decrease.
pub fn step_lines(stderr: &str) -> Vec<(f64, String)> {
    let mut out: Vec<(f64, String)> = Vec::new();
    for l in stderr.lines() {
        let rest = l.strip_prefix("guest-installer: [").unwrap_or_else(|| panic!("not a step line: {l:?} in\n{stderr}"));
        let (secs, text) = rest.split_once(" s] ").unwrap_or_else(|| panic!("not a step line: {l:?} in\n{stderr}"));
        assert_eq!(secs.len(), 6.max(secs.trim_start().len()), "the time is not right-aligned in 6 columns: {l:?}");
        let secs: f64 = secs.trim().parse().unwrap_or_else(|e| panic!("{l:?}: {e}"));
        if let Some((prev, _)) = out.last() {
            assert!(secs >= *prev, "the time went back at {l:?} in\n{stderr}");
        }
        out.push((secs, text.to_owned()));
    }
    out
}

/// Asserts that `stderr` is only step lines (see [`step_lines`]) and that
/// a line starting with each of `wanted` comes in this order; returns the
/// lines.
pub fn assert_steps(stderr: &str, wanted: &[&str]) -> Vec<(f64, String)> {
    let lines = step_lines(stderr);
    let mut at = 0;
    for w in wanted {
        match lines[at..].iter().position(|(_, t)| t.starts_with(w)) {
            Some(i) => at += i + 1,
            None => panic!("no step {w:?} after line {at} in\n{stderr}"),
        }
    }
    lines
}

/// A long test's steps and how long each took, printed as they end
/// (`STEP name: N s`) and summed at the end.
#[derive(Default)]
pub struct TimedSteps(std::cell::RefCell<Vec<(String, f64)>>);

impl TimedSteps {
    pub fn run<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let r = f();
        let s = t.elapsed().as_secs_f64();
        eprintln!("STEP {name}: {s:.1} s");
        self.0.borrow_mut().push((name.to_owned(), s));
        r
    }

    pub fn total(&self) -> f64 {
        self.0.borrow().iter().map(|(_, s)| s).sum()
    }
}
