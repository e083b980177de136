//! Reading a guest's console log. What a guest prints is hostile input of
//! any size: every read here is bounded by one limit, never follows a
//! symlink, and text meant for a person loses its escape sequences.

use crate::fsutil::open_nofollow;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The most read from either end of a console log. A clone's identity unit
/// prints early in its first boot, and the installer's stage markers and
/// dialogs are near the end; a guest that floods its console cannot make a
/// `status` read more than this.
pub const READ_BYTES: u64 = 8 << 20;

/// The first [`READ_BYTES`] of a console log as text; `None` if there is
/// no log.
pub fn head(path: &Path) -> Option<String> {
    read_from(path, |_| 0)
}

/// The last [`READ_BYTES`] of a console log as text; `None` if there is
/// no log.
pub fn tail(path: &Path) -> Option<String> {
    read_from(path, |len| len.saturating_sub(READ_BYTES))
}

fn read_from(path: &Path, start: impl FnOnce(u64) -> u64) -> Option<String> {
    let mut f = open_nofollow(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(start(len))).ok()?;
    let mut buf = Vec::new();
    f.take(READ_BYTES).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The last line of console text (a [`tail`]) that has visible text,
/// cleaned (see [`clean_line`]) so it is safe to print.
pub fn last_line_of(text: &str) -> Option<String> {
    text.rsplit(['\n', '\r']).map(clean_line).find(|l| !l.trim().is_empty())
}

/// Strips ANSI escape sequences, DEC line-drawing text (the installer's
/// dialog frames) and control characters from console text, squeezes runs
/// of blanks and keeps at most 200 characters.
pub fn clean_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut line_drawing = false;
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: ESC [ parameters final-byte.
                Some('[') => {
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
                // Character set selection: ESC ( 0 starts line drawing, ESC ( B ends it.
                Some('(') | Some(')') => line_drawing = chars.next() == Some('0'),
                _ => {}
            },
            '\u{e}' => line_drawing = true,
            '\u{f}' => line_drawing = false,
            c if c.is_control() => {}
            c if line_drawing => {
                if c == ' ' {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    let squeezed: Vec<&str> = out.split_whitespace().collect();
    squeezed.join(" ").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn console_lines_lose_escapes() {
        assert_eq!(clean_line("\u{1b}[1;31mhello\u{1b}[0m\u{7}"), "hello");
        assert_eq!(clean_line("  \u{1b}(0lqqqu\u{1b}(B Checking the   mirror \u{1b}(0tqqk\u{1b}(B"), "Checking the mirror");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        fs::write(&p, "a\r\nsecond line\r\n\u{1b}[H\r\n").unwrap();
        assert_eq!(last_line_of(&tail(&p).unwrap()).as_deref(), Some("second line"));
        assert_eq!(last_line_of("\u{1b}[H\r\n \n"), None);
    }

    #[test]
    fn reads_are_bounded_at_both_ends_and_refuse_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let mut text = b"FIRST".to_vec();
        text.resize(READ_BYTES as usize + 10, b'.');
        text.extend_from_slice(b"LAST");
        fs::write(&p, &text).unwrap();
        let (h, t) = (head(&p).unwrap(), tail(&p).unwrap());
        assert_eq!((h.len() as u64, t.len() as u64), (READ_BYTES, READ_BYTES));
        assert!(h.starts_with("FIRST") && !h.contains("LAST"));
        assert!(t.ends_with("LAST") && !t.contains("FIRST"));
        std::os::unix::fs::symlink(&p, d.path().join("link")).unwrap();
        assert_eq!(head(&d.path().join("link")), None);
        assert_eq!(tail(&d.path().join("nope")), None);
    }
}
