//! Who is asking: the principal remctld authenticated (`REMOTE_USER`), or
//! root on this host with no `REMOTE_USER` (local administration).

use crate::types::Principal;
use std::ffi::OsStr;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    LocalRoot,
    Remote(Principal),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallerError {
    #[error("REMOTE_USER is not a valid Kerberos principal")]
    BadPrincipal,
    #[error("run by remctld (REMOTE_USER set) or by root on this host")]
    NotRoot,
}

impl Caller {
    /// `remote_user` is the raw environment value; `real_uid` the process's
    /// real uid (not effective: a setuid wrapper must not turn a local user
    /// into a local admin).
    pub fn identify(remote_user: Option<&OsStr>, real_uid: u32) -> Result<Caller, CallerError> {
        match remote_user {
            Some(v) => {
                let s = v.to_str().ok_or(CallerError::BadPrincipal)?;
                Principal::parse(s).map(Caller::Remote).map_err(|_| CallerError::BadPrincipal)
            }
            None if real_uid == 0 => Ok(Caller::LocalRoot),
            None => Err(CallerError::NotRoot),
        }
    }

    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::LocalRoot => None,
            Caller::Remote(p) => Some(p),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::LocalRoot => f.write_str("root (local)"),
            Caller::Remote(p) => p.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_rules() {
        let p = |s: &str| Caller::identify(Some(OsStr::new(s)), 1000);
        assert_eq!(p("alice@EXAMPLE.ORG"), Ok(Caller::Remote(Principal::parse("alice@EXAMPLE.ORG").unwrap())));
        // REMOTE_USER wins even for root: remctld runs us as root.
        assert!(matches!(Caller::identify(Some(OsStr::new("bob@X")), 0), Ok(Caller::Remote(_))));
        for bad in ["", "alice@", "@REALM", "a b@R", "a@b@R", "alice@R\n"] {
            assert_eq!(p(bad), Err(CallerError::BadPrincipal), "{bad:?}");
        }
        assert_eq!(Caller::identify(None, 0), Ok(Caller::LocalRoot));
        assert_eq!(Caller::identify(None, 1000), Err(CallerError::NotRoot));
    }
}
