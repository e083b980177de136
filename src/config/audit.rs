//! The `[audit]` section: where audit records go, and the socket used
//! when the config cannot say.

use super::AbsPath;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// The syslog socket; tests point it at a socket of their own.
    #[serde(default = "default_syslog_socket")]
    pub syslog_socket: AbsPath,
}

/// Where audit records go when the config names no other socket, or
/// cannot be read at all.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

fn default_syslog_socket() -> AbsPath {
    AbsPath(DEFAULT_SYSLOG_SOCKET.into())
}

impl Default for Audit {
    fn default() -> Self {
        Audit { syslog_socket: default_syslog_socket() }
    }
}
