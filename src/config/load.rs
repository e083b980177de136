//! Finding and reading the config: where it is, that only root can change
//! it, and that it parses. Kept apart from the schema it reads into.

use super::Config;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/guest-installer/config.toml";
pub const ENV_VAR: &str = "GUEST_INSTALLER_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path} is not trusted: {reason}")]
    Untrusted { path: PathBuf, reason: crate::trust::Untrusted },
}

impl Config {
    /// Where the config is: the environment variable (set by whoever
    /// starts remctld, never by a remote caller) or the default.
    pub fn location() -> PathBuf {
        std::env::var_os(ENV_VAR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }

    /// Reads the config if only root can change it (see [`crate::trust`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = crate::trust::read(path, crate::trust::MAX_BYTES).map_err(|e| match e {
            crate::trust::Untrusted::Io(source) => ConfigError::Read { path: path.into(), source },
            reason => ConfigError::Untrusted { path: path.into(), reason },
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::Parse { path: path.into(), message: "it is not UTF-8 text".into() })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if let Some(cluster) = &c.cluster {
            cluster.check().map_err(|r| r.0.to_owned())?;
        }
        Ok(c)
    }
}
