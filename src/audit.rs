//! Every request goes to syslog (facility authpriv): who, what, which
//! machine, how it ended (and, for a request that may change anything,
//! that it started: `outcome=started`). Never a password or hash: nothing
//! secret has a `Display` to put here.

use std::path::Path;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use syslog::{Facility, Formatter3164, LogFormat, Severity};

pub struct Entry<'a> {
    pub principal: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
}

impl Entry<'_> {
    pub fn line(&self) -> String {
        let mut s = format!(
            "principal={} action={} vm={} outcome={}",
            self.principal,
            self.action,
            self.target.unwrap_or("-"),
            self.outcome
        );
        if let Some(d) = self.detail {
            // One line, printable: a message may quote a tool's stderr.
            let d: String = d.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect();
            s.push_str(&format!(" detail=\"{}\"", d.replace('"', "'")));
        }
        s
    }
}

/// How long a request may wait on a slow syslog daemon.
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// Sends the entry. A datagram socket (journald's and rsyslog's /dev/log)
/// with a send timeout: a stuck or full syslog must not hang every request.
/// If syslog cannot be reached the request still completes, and the failure
/// is said on stderr (never stdout, which may carry JSON).
pub fn record(socket: &Path, e: &Entry) {
    let formatter = Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "guest-installer".into(),
        pid: std::process::id(),
    };
    // A refusal or failure is worth noticing; a start or a success is not.
    let severity = if ["ok", "started"].contains(&e.outcome) { Severity::LOG_INFO } else { Severity::LOG_NOTICE };
    let mut msg = Vec::new();
    let sent = formatter
        .format(&mut msg, severity, e.line())
        .map_err(|_| std::io::Error::other("format"))
        .and_then(|()| {
            let s = UnixDatagram::unbound()?;
            s.set_write_timeout(Some(SEND_TIMEOUT))?;
            s.connect(socket)?;
            s.send(&msg).map(|_| ())
        });
    if sent.is_err() {
        eprintln!("guest-installer: warning: could not write the audit record to syslog at {}", socket.display());
    }
}
