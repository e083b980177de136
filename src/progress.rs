//! How far an install has got, read from the installer's serial console:
//! enough for someone watching a 20-minute install to see it move.

use crate::console;
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

/// The latest stage in a console log's tail (for callers that read the
/// log for nothing else).
pub fn stage(console_log: &Path) -> Option<Stage> {
    stage_of(&console::tail(console_log)?)
}

/// The latest stage in console text (a tail).
pub fn stage_of(text: &str) -> Option<Stage> {
    MARKERS.iter().find(|(_, pats)| pats.iter().any(|p| text.contains(p))).map(|(s, _)| *s)
}

/// The title of a dialog the installer drew after its last stage marker
/// (`[!!] Download installer components`) in console text (a tail). With
/// priority=critical a dialog means a question nobody will answer or an
/// error: the install waits there for ever, while the stage alone would
/// look as if it were going on.
pub fn dialog_of(text: &str) -> Option<String> {
    // newt marks the title with the question's priority: [!!] critical,
    // [!] high, [.] medium.
    let (at, mark) = ["[!!] ", "[!] ", "[.] "].iter().filter_map(|m| text.rfind(m).map(|i| (i, *m))).max()?;
    let last_marker = MARKERS.iter().flat_map(|(_, pats)| pats.iter()).filter_map(|p| text.rfind(p)).max();
    if last_marker.is_some_and(|m| m > at) {
        return None;
    }
    // The title runs to the next escape sequence; keep it plain and short:
    // it comes from the guest.
    let title: String = text[at + mark.len()..]
        .chars()
        .take_while(|c| *c != '\x1b' && *c != '\n' && *c != '\r')
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(80)
        .collect();
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_owned())
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

    /// As the real installer drew it here (the mirror lacked its udebs).
    const STUCK: &str = "Checking the Debian archive mirror\x1b[H\x1b[0m\x1b(0\x1b[30m\x1b[47mlqqqqqqqqu\x1b[0m\x1b(B\x1b[30m\x1b[47m \x1b[31m[!!] Download installer components\x1b[30m \x1b(0tqqqk\x1b[6;3H The installer failed to download a file";

    #[test]
    fn a_dialog_after_the_last_stage_is_where_the_installer_waits() {
        assert_eq!(dialog_of(STUCK).as_deref(), Some("Download installer components"));
        assert_eq!(stage_of(STUCK), Some(Stage::NetworkConfigured));
        // Answered (by the preseed) and gone on: not waiting.
        assert_eq!(dialog_of(&format!("{STUCK}\nInstalling the base system")), None);
        assert_eq!(dialog_of("Linux version"), None);
        assert_eq!(dialog_of("[!] \x1b[0m"), None);
        let hostile = "[!!] a\u{7}b\u{202e}c";
        assert_eq!(dialog_of(hostile).as_deref(), Some("abc"));
    }
}
