//! What the benches share: where the binary is, medians, env knobs.
#![allow(dead_code)]

#[path = "../../tests/common/shared.rs"]
pub mod shared;

use std::path::PathBuf;
use std::time::Duration;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_guest-installer"))
}

pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub p50: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub fn stats(v: &[f64]) -> Stats {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    let p50 = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    Stats { p50, min: s[0], max: s[n - 1], n }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p50 {:>9.2} ms  (min {:.2}, max {:.2}, n={})", self.p50, self.min, self.max, self.n)
    }
}
