//! Who may do what. Pure decisions over the caller, the config's admins
//! and a machine's owners; no I/O, so it is tested exhaustively.

use crate::caller::Caller;
use crate::config::Config;
use crate::registry::Machine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

pub fn is_admin(caller: &Caller, config: &Config) -> bool {
    match caller {
        Caller::LocalRoot => true,
        Caller::Remote(p) => config.is_admin(p),
    }
}

/// Owners and admins may install, inspect and cancel a machine.
pub fn may_manage(caller: &Caller, config: &Config, machine: &Machine) -> Decision {
    let owner = caller.principal().is_some_and(|p| machine.owners.contains(p));
    if owner || is_admin(caller, config) {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

/// Registering machines is for admins, remote or local.
pub fn may_administer(caller: &Caller, config: &Config) -> Decision {
    if is_admin(caller, config) {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

/// Importing images names a host path, so only root on the host may.
pub fn may_administer_locally(caller: &Caller) -> Decision {
    if *caller == Caller::LocalRoot {
        Decision::Allow
    } else {
        Decision::Deny
    }
}
