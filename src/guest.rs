//! Who a guest is on its network, and how root gets in: the per-VM values
//! that both its installer's preseed and a clone's identity seed are
//! rendered from. Every one is a validated type that cannot hold a
//! newline, so neither rendering can be made to add a line.

use crate::config::Config;
use crate::registry::Machine;
use crate::rootlogin::RootLogin;
use crate::types::{DomainName, Hostname, Network};

pub struct Guest<'a> {
    pub hostname: &'a Hostname,
    pub domain: &'a DomainName,
    pub network: &'a Network,
    pub root: &'a RootLogin,
}

impl<'a> Guest<'a> {
    /// `machine` under `hostname`, in the config's domain.
    pub fn of_machine(config: &'a Config, machine: &'a Machine, hostname: &'a Hostname, root: &'a RootLogin) -> Self {
        Guest { hostname, domain: &config.domain, network: &machine.network, root }
    }
}
