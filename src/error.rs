//! The one place where every failure becomes a documented exit code and
//! JSON `error.kind` (DESIGN.md, "Exit codes and JSON").

use std::fmt;

/// What kind of failure a request ended in. Each maps to exactly one exit
/// code; nothing else in the program chooses an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failed,
    Invalid,
    Denied,
    NotFound,
    Busy,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::Invalid => 2,
            Kind::Denied => 3,
            Kind::NotFound => 4,
            Kind::Busy => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Failed => "failed",
            Kind::Invalid => "invalid",
            Kind::Denied => "denied",
            Kind::NotFound => "not_found",
            Kind::Busy => "busy",
        }
    }

    /// The kind `as_str` names (the console door reads it from the root side).
    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Failed, Kind::Invalid, Kind::Denied, Kind::NotFound, Kind::Busy].into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request's failure as the caller sees it: a kind and a message that
/// says what was wrong and what to do. Messages never carry a secret:
/// nothing that holds a password or hash implements `Display`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::Invalid, message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(Kind::Denied, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(Kind::Busy, message)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

// Each boundary's error enum is mapped to a kind here and nowhere else.

impl From<crate::caller::CallerError> for Error {
    fn from(e: crate::caller::CallerError) -> Self {
        Error::denied(e.to_string())
    }
}

impl From<crate::cli::UsageError> for Error {
    fn from(e: crate::cli::UsageError) -> Self {
        Error::invalid(e.to_string())
    }
}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Error::failed(e.to_string())
    }
}

impl From<crate::statedir::UnsafeStateDir> for Error {
    fn from(e: crate::statedir::UnsafeStateDir) -> Self {
        Error::failed(e.to_string())
    }
}

impl From<crate::registry::RegistryError> for Error {
    fn from(e: crate::registry::RegistryError) -> Self {
        use crate::registry::RegistryError as E;
        let kind = match e {
            E::NotFound(_) => Kind::NotFound,
            E::Exists(_) | E::NoVolume(_) => Kind::Invalid,
            E::Busy => Kind::Busy,
            E::Corrupt { .. } | E::Io { .. } => Kind::Failed,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<crate::volume::VolumeError> for Error {
    fn from(e: crate::volume::VolumeError) -> Self {
        use crate::volume::VolumeError as E;
        let kind = match &e {
            // What the request named or asked for is refused.
            E::Missing(_)
            | E::NotAVolume(_)
            | E::UnderStateDir(..)
            | E::HardLinked(_)
            | E::NoPool
            | E::Exists { .. }
            | E::Imported(_)
            | E::NotInPool { .. } => Kind::Invalid,
            E::UnsafePool(..) | E::Zeroing(..) | E::ThinPoolNotZeroing(_) | E::Tool(_) | E::Io { .. } => Kind::Failed,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<crate::state::StateError> for Error {
    fn from(e: crate::state::StateError) -> Self {
        Error::failed(e.to_string())
    }
}

impl From<crate::image::ImageError> for Error {
    fn from(e: crate::image::ImageError) -> Self {
        use crate::image::ImageError as E;
        let kind = match &e {
            E::NotFound(_) => Kind::NotFound,
            E::Busy => Kind::Busy,
            // The ISO the admin named is bad: a request error.
            E::Exists(_)
            | E::IsoUnreadable { .. }
            | E::DigestMismatch { .. }
            | E::NotIso(_)
            | E::Truncated { .. }
            | E::Layout(_)
            | E::Unsafe(_) => Kind::Invalid,
            // An ISO that passed every check above and still cannot be
            // read, or xorriso missing, failing or hanging: our failure.
            E::Extract(_) | E::NoSpace { .. } | E::Master(_) | E::BaseIso(_) | E::Corrupt { .. } | E::Io { .. } => Kind::Failed,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<crate::media::MediaError> for Error {
    fn from(e: crate::media::MediaError) -> Self {
        Error::failed(e.to_string())
    }
}

impl From<crate::hypervisor::HvError> for Error {
    fn from(e: crate::hypervisor::HvError) -> Self {
        Error::failed(e.to_string())
    }
}

impl From<crate::lock::LockError> for Error {
    fn from(e: crate::lock::LockError) -> Self {
        match e {
            crate::lock::LockError::Held => {
                Error::busy("another request for this machine is in progress; try again when it has finished")
            }
            e => Error::failed(e.to_string()),
        }
    }
}

impl From<crate::template::TemplateError> for Error {
    fn from(e: crate::template::TemplateError) -> Self {
        use crate::template::TemplateError as E;
        let kind = match &e {
            E::NotFound(_) => Kind::NotFound,
            E::Busy => Kind::Busy,
            E::Exists(_) => Kind::Invalid,
            _ => Kind::Failed,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<crate::ganeti::GanetiError> for Error {
    fn from(e: crate::ganeti::GanetiError) -> Self {
        use crate::ganeti::GanetiError as E;
        let kind = match &e {
            E::Env(_) | E::Stream(crate::ganeti::stream::StreamError::Header | crate::ganeti::stream::StreamError::Corrupt(_)) => Kind::Invalid,
            E::Template(crate::template::TemplateError::NotFound(_)) => Kind::NotFound,
            E::Clone(crate::template::clone::CloneError::InUse(_)) => Kind::Busy,
            _ => Kind::Failed,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<crate::rootlogin::RequestError> for Error {
    fn from(e: crate::rootlogin::RequestError) -> Self {
        use crate::rootlogin::RequestError as E;
        match e {
            E::Keys(k) => k.into(),
            e => Error::invalid(e.to_string()),
        }
    }
}

impl From<crate::keystore::KeyStoreError> for Error {
    fn from(e: crate::keystore::KeyStoreError) -> Self {
        use crate::keystore::KeyStoreError as E;
        let kind = match &e {
            E::Key(_) | E::Full { .. } | E::Taken => Kind::Invalid,
            E::NoSuchKey { .. } => Kind::NotFound,
            E::Busy => Kind::Busy,
            E::Corrupt { .. } | E::Io(_) => Kind::Failed,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<crate::console_door::door::DoorError> for Error {
    fn from(e: crate::console_door::door::DoorError) -> Self {
        use crate::console_door::door::DoorError as E;
        let kind = match &e {
            E::NotForced => Kind::Denied,
            E::Usage | E::VmName(_) => Kind::Invalid,
            E::Connect { .. } | E::NoAnswer | E::Io(_) => Kind::Failed,
        };
        Error::new(kind, e.to_string())
    }
}
