//! The `[console]` section: the console door's SSH account and the socket
//! its door program reaches the root side through.

use super::{AbsPath, UserName};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// The SSH account (`ssh guest@HOST console VM`): `console-keys`
    /// answers only for it, and `console-serve` serves only its processes.
    #[serde(default = "default_account")]
    pub account: UserName,
    /// Where `console-serve` is reached (the systemd socket unit's
    /// `ListenStream=`). `console-keys` puts it into the forced command, so
    /// the door program reads no file to learn it.
    #[serde(default = "default_socket")]
    pub socket: SocketPath,
}

/// The default account, as the package creates it.
pub const DEFAULT_ACCOUNT: &str = "guest";
/// The default socket, as the package's socket unit listens on it.
pub const DEFAULT_SOCKET: &str = "/run/guest-installer/console.sock";

fn default_account() -> UserName {
    UserName::parse(DEFAULT_ACCOUNT).expect("the default account name is valid")
}
fn default_socket() -> SocketPath {
    SocketPath(AbsPath::from_static(DEFAULT_SOCKET))
}

impl Default for Console {
    fn default() -> Self {
        Console { account: default_account(), socket: default_socket() }
    }
}

/// A Unix socket's path: an [`AbsPath`] short enough for `sun_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath(AbsPath);

/// `sun_path` holds 108 bytes with the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

impl SocketPath {
    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl<'de> Deserialize<'de> for SocketPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = AbsPath::deserialize(d)?;
        if p.path().as_os_str().len() > MAX_SOCKET_PATH {
            return Err(serde::de::Error::custom(format!("console.socket must be at most {MAX_SOCKET_PATH} bytes (a Unix socket's limit)")));
        }
        Ok(SocketPath(p))
    }
}
