//! The `[timeouts]` section: how long each kind of external program may
//! run, with the defaults a config without the section gets.

use serde::Deserialize;
use std::time::Duration;

/// Time limits for external programs, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// xorriso extracting or writing an image.
    #[serde(default = "default_tool_s")]
    pub tool_s: u64,
    /// The hypervisor's control program (`xl create`, `xl destroy`, ...).
    #[serde(default = "default_hypervisor_s")]
    pub hypervisor_s: u64,
    /// A whole template build (mmdebstrap downloads ~150 packages; the
    /// installer builder's guest must stop within it).
    #[serde(default = "default_template_s")]
    pub template_s: u64,
    /// How long `install --no-start` media (they hold the password hash)
    /// may wait to be used before `settle` removes them.
    #[serde(default = "default_prepared_media_s")]
    pub prepared_media_s: u64,
    /// How long `stop --force` waits for a clean shutdown before it
    /// destroys the guest.
    #[serde(default = "default_stop_s")]
    pub stop_s: u64,
}

fn default_prepared_media_s() -> u64 {
    3600
}

fn default_stop_s() -> u64 {
    60
}

fn default_template_s() -> u64 {
    1800
}

fn default_tool_s() -> u64 {
    600
}
fn default_hypervisor_s() -> u64 {
    60
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tool_s: default_tool_s(),
            hypervisor_s: default_hypervisor_s(),
            template_s: default_template_s(),
            prepared_media_s: default_prepared_media_s(),
            stop_s: default_stop_s(),
        }
    }
}

impl Timeouts {
    pub fn tool(&self) -> Duration {
        Duration::from_secs(self.tool_s)
    }
    pub fn hypervisor(&self) -> Duration {
        Duration::from_secs(self.hypervisor_s)
    }
    pub fn template(&self) -> Duration {
        Duration::from_secs(self.template_s)
    }
    pub fn stop(&self) -> Duration {
        Duration::from_secs(self.stop_s)
    }
}
