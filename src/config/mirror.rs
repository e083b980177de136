//! The `[mirror]` section: the Debian mirror installs fetch from, which
//! ends up in every preseed, so both parts are checked here.

use crate::types::Rule;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    pub host: MirrorHost,
    pub directory: MirrorDir,
}

impl Mirror {
    /// `http://HOST/DIR`, as apt and a template's manifest name it.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.host.as_str(), self.directory.as_str())
    }
}

checked_string!(
    /// A mirror host name or address, optionally with `:port`.
    MirrorHost,
    |s| !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b)),
    "mirror.host must be a host name or address (letters, digits, '.', '-', ':')"
);
checked_string!(
    /// The mirror's directory, e.g. `/debian`.
    MirrorDir,
    |s| s.starts_with('/') && s.len() <= 255 && !s.contains("..") && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)),
    "mirror.directory must be an absolute path of letters, digits, '/', '.', '_' and '-'"
);
