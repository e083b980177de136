//! A throwaway Kerberos realm and a stand-alone remctld, started by
//! tests/support/remctl/realm and stopped when dropped; and a way to run a
//! command with a time limit.

use super::{repo, Out};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs a command with a time limit; kills it if it overruns.
pub fn run_bounded(mut c: Command, stdin: &[u8], limit: Duration) -> Out {
    let (out, killed) = run_limited(&mut c, stdin, limit);
    assert!(!killed, "{c:?} ran longer than {limit:?}");
    out
}

/// Runs a command with a time limit, killing it if it overruns: its
/// output, and whether it was killed.
fn run_limited(c: &mut Command, stdin: &[u8], limit: Duration) -> (Out, bool) {
    let (o, killed) = run_watched(c, stdin, limit).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    (Out::from_output(o), killed)
}

/// Runs a command with a time limit, killing it (SIGKILL) if it overruns:
/// its output and whether it was killed, or why it could not be run.
/// Never panics (teardowns use it).
pub fn run_watched(c: &mut Command, stdin: &[u8], limit: Duration) -> std::io::Result<(std::process::Output, bool)> {
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn()?;
    let mut si = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = si.write_all(&data);
    });
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            // Time is up (or the sender went away without a word): kill it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            return true;
        }
        false
    });
    let o = child.wait_with_output();
    let _ = done.send(());
    let killed = watchdog.join().unwrap_or(true);
    let _ = writer.join();
    Ok((o?, killed))
}

/// A realm + remctld started by tests/support/remctl/realm; stopped on drop
/// (also when the test panics).
pub struct Realm {
    dir: PathBuf,
    vars: BTreeMap<String, String>,
}

impl Realm {
    /// `dir` must be an empty directory.
    pub fn up(dir: &Path, args: &[&str], principals: &[&str]) -> Realm {
        Self::up_in(&[], dir, args, principals)
    }

    /// `up` run through `prefix` (e.g. `ip netns exec NS`: the daemons
    /// then listen in that network namespace).
    pub fn up_in(prefix: &[&str], dir: &Path, args: &[&str], principals: &[&str]) -> Realm {
        let mut c = super::prefixed(prefix, &repo().join("tests/support/remctl/realm"));
        c.arg("up").arg(dir).args(args).args(principals);
        if !args.contains(&"--max-life") {
            c.args(["--max-life", "300"]);
        }
        // The guard before `up` runs: its drop stops whatever did start,
        // also when `up` fails or overruns and is killed.
        let mut realm = Realm { dir: dir.to_path_buf(), vars: BTreeMap::new() };
        let limit = Duration::from_secs(60);
        let (out, killed) = run_limited(&mut c, b"", limit);
        assert!(!killed, "realm up ran longer than {limit:?}: {out:?}");
        assert_eq!(out.code, 0, "realm up failed: {out:?}");
        realm.vars = fs::read_to_string(dir.join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        realm
    }

    pub fn var(&self, k: &str) -> &str {
        &self.vars[k]
    }

    pub fn cc(&self, principal: &str) -> String {
        let name = principal.split('@').next().unwrap().replace('/', "_");
        format!("FILE:{}/{name}", self.var("CC_DIR"))
    }

    /// `remctl` as `principal` (e.g. bob@EXAMPLE.ORG), with `stdin` unused.
    pub fn remctl(&self, principal: &str, args: &[&str]) -> Out {
        let mut c = Command::new("remctl");
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("KRB5_CONFIG", self.var("KRB5_CONFIG"))
            .env("KRB5CCNAME", self.cc(principal))
            .args(["-t", "30", "-p", self.var("REMCTL_PORT"), "-s", self.var("SERVICE"), "127.0.0.1"])
            .args(args);
        // remctld passes the program the words after the command word.
        run_bounded(c, b"", Duration::from_secs(40)).of_request(args.get(1..).unwrap_or_default())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.var("REMCTLD_LOG")).unwrap()
    }
}

impl Drop for Realm {
    fn drop(&mut self) {
        if !self.dir.join("pids").is_dir() && !std::thread::panicking() {
            panic!("{} was removed before the realm was stopped: its daemons are left running", self.dir.display());
        }
        let st = Command::new(repo().join("tests/support/remctl/realm")).arg("down").arg(&self.dir).status();
        if !matches!(st, Ok(s) if s.success()) && !std::thread::panicking() {
            panic!("realm down {} failed: {st:?}", self.dir.display());
        }
    }
}
