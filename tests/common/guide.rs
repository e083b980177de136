//! The operator guide's shell blocks, as the tests run them: a block is
//! found by the heading of its section (`## 7. The first image`, or a
//! `### ` subsection), and split into its commands, each the guide's
//! text (a `\` continuation stays one command).

use super::repo;
use std::fs;

/// Every ```sh block under `heading` (the heading's text, without the
/// `#`s), up to the next heading of any level.
pub fn sh_blocks(heading: &str) -> Vec<String> {
    blocks(heading, "sh")
}

/// Every fenced block of language `lang` (```sh, ```toml) under `heading`.
pub fn blocks(heading: &str, lang: &str) -> Vec<String> {
    let guide = fs::read_to_string(repo().join("doc/operator-guide.md")).unwrap();
    let mut blocks = Vec::new();
    let (mut in_section, mut found) = (false, false);
    // Inside a fence: whether it is in `lang`, and its text so far.
    let mut fence: Option<(bool, String)> = None;
    for line in guide.lines() {
        if let Some((sh, text)) = fence.as_mut() {
            if line.starts_with("```") {
                if *sh && in_section {
                    blocks.push(std::mem::take(text));
                }
                fence = None;
            } else {
                text.push_str(line);
                text.push('\n');
            }
        } else if line.starts_with("```") {
            fence = Some((line[3..] == *lang, String::new()));
        } else if line.starts_with('#') {
            let text = line.trim_start_matches('#');
            in_section = text.starts_with(' ') && text.trim() == heading;
            found |= in_section;
        }
    }
    assert!(found, "no section {heading:?} in the guide");
    assert!(!blocks.is_empty(), "no {lang} block in {heading:?}");
    blocks
}

/// The `n`th ```sh block under `heading` (from 0).
pub fn sh_block(heading: &str, n: usize) -> String {
    nth(&sh_blocks(heading), heading, n)
}

/// The one ```sh block under `heading` that contains `needle`: blocks are
/// found by what they do, so a new example in a section moves nothing.
pub fn sh_block_with(heading: &str, needle: &str) -> String {
    let found: Vec<String> = sh_blocks(heading).into_iter().filter(|b| b.contains(needle)).collect();
    assert_eq!(found.len(), 1, "{heading:?} has {} sh blocks with {needle:?}, not one: {found:?}", found.len());
    found.into_iter().next().unwrap()
}

/// The `n`th ```toml block under `heading` (from 0).
pub fn toml_block(heading: &str, n: usize) -> String {
    nth(&blocks(heading, "toml"), heading, n)
}

fn nth(blocks: &[String], heading: &str, n: usize) -> String {
    blocks.get(n).unwrap_or_else(|| panic!("{heading:?} has {} such blocks, not {}", blocks.len(), n + 1)).clone()
}

/// The commands of a block: its lines without blank and comment-only
/// ones, a line ending in `\` joined (as written) with the next.
pub fn commands(block: &str) -> Vec<String> {
    assert!(!block.contains("<<"), "a here-document is not one command per line: {block}");
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for line in block.lines() {
        if open {
            let last = out.last_mut().unwrap();
            last.push('\n');
            last.push_str(line);
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            out.push(line.to_owned());
        }
        open = line.ends_with('\\');
    }
    out
}
