//! How far an install has got, read from the installer's serial console:
//! enough for someone watching a 20-minute install to see it move.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Stages in the order the installer reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Booted,
    NetworkConfigured,
    InstallingBaseSystem,
    Finished,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Booted => "booted",
            Stage::NetworkConfigured => "network configured",
            Stage::InstallingBaseSystem => "installing base system",
            Stage::Finished => "finished",
        }
    }
}

/// What d-i (and the kernel before it) prints on its console at each
/// stage, latest first.
const MARKERS: &[(Stage, &[&str])] = &[
    (Stage::Finished, &["Installation complete", "Finishing the installation", "reboot: Restarting system", "reboot: Power down"]),
    (Stage::InstallingBaseSystem, &["Installing the base system", "Installing the system"]),
    (
        Stage::NetworkConfigured,
        &["Checking the Debian archive mirror", "Choose a mirror of the Debian archive", "Setting up the clock", "Configuring apt"],
    ),
    (Stage::Booted, &["Linux version", "Detecting network hardware", "Loading additional components", "Decompressing Linux"]),
];

/// Console logs are scanned from their last bytes only: the markers of
/// later stages are near the end, and status must stay cheap.
const SCAN_BYTES: u64 = 4 << 20;

pub fn stage(console_log: &Path) -> Option<Stage> {
    let mut f = crate::fsutil::open_nofollow(console_log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(SCAN_BYTES))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    stage_of(&text)
}

pub fn stage_of(text: &str) -> Option<Stage> {
    MARKERS.iter().find(|(_, pats)| pats.iter().any(|p| text.contains(p))).map(|(s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_stage_wins() {
        assert_eq!(stage_of(""), None);
        assert_eq!(stage_of("[    0.000000] Linux version 6.1.0"), Some(Stage::Booted));
        assert_eq!(
            stage_of("Linux version\n Detecting network hardware\n Checking the Debian archive mirror"),
            Some(Stage::NetworkConfigured)
        );
        assert_eq!(stage_of("Linux version ... Installing the base system ... "), Some(Stage::InstallingBaseSystem));
        assert_eq!(stage_of("Installing the base system\nreboot: Restarting system"), Some(Stage::Finished));
    }
}
