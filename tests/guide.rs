//! The operator guide's commands, run as the guide gives them: a step that
//! stops working fails here. Each test takes a shell block out of
//! doc/operator-guide.md by its section, changes only where it points
//! (`/srv/iso` becomes a directory of the test's), and runs it with
//! `guest-installer` on PATH being the built binary with the test's config.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The first ```sh block of the guide's section `heading` (a `## ` line).
fn guide_block(heading: &str) -> String {
    let guide = fs::read_to_string(repo().join("doc/operator-guide.md")).unwrap();
    let at = guide.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no section {heading:?} in the guide"));
    let rest = &guide[at..];
    let start = rest.find("```sh\n").unwrap_or_else(|| panic!("no sh block in {heading:?}")) + "```sh\n".len();
    let end = start + rest[start..].find("```").unwrap();
    rest[start..end].to_owned()
}

/// Runs `script` with bash, `guest-installer` being the built binary with
/// the env's config, as root on the host.
fn run_as_the_guide_does(env: &Env, script: &str) -> Out {
    let bin_dir = env.root().join("guide-bin");
    fs::create_dir_all(&bin_dir).unwrap();
    write_executable(
        &bin_dir.join("guest-installer"),
        &format!("#!/bin/sh\nGUEST_INSTALLER_CONFIG='{}' exec '{}' \"$@\"\n", env.config.display(), bin().display()),
    );
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display());
    Out::from_output(Command::new("bash").args(["-euo", "pipefail", "-c", script]).env_clear().env("PATH", path).output().unwrap())
}

/// A SHA256SUMS as Debian publishes it beside its ISOs: "HASH  NAME" lines,
/// the names carrying the point release.
fn publish(dir: &Path, iso: &Path, name: &str) {
    fs::copy(iso, dir.join(name)).unwrap();
    let sums = format!(
        "{}  debian-12.8.0-amd64-DVD-1.iso\n{}  {name}\n{}  debian-edu-12.8.0-amd64-netinst.iso\n",
        "0".repeat(64),
        sha256(&dir.join(name)),
        "1".repeat(64)
    );
    fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

/// Section 7: the import, with the sum looked up in a real-shaped
/// SHA256SUMS as the guide shows; a lookup that finds nothing is refused
/// as empty, not as "not hexadecimal".
#[test]
fn section_7_imports_the_first_image_as_the_guide_says() {
    let env = Env::new();
    let srv = env.root().join("srv-iso");
    fs::create_dir(&srv).unwrap();
    publish(&srv, &installer_iso(false), "debian-12.8.0-amd64-netinst.iso");
    let block = guide_block("7. The first image");
    assert!(block.contains("/srv/iso"), "{block}");
    let script = block.replace("/srv/iso", srv.to_str().unwrap());
    let o = run_as_the_guide_does(&env, &script);
    assert_eq!(o.code, 0, "the guide's section 7 failed:\n{script}\n{o:?}");
    assert!(o.stdout.contains("bookworm"), "images does not list it: {o:?}");
    assert!(env.state.join("images/bookworm/manifest.json").exists());

    // The same lookup against a SHA256SUMS that lists another ISO only.
    let env = Env::new();
    fs::write(srv.join("SHA256SUMS"), format!("{}  debian-12.8.0-amd64-DVD-1.iso\n", "0".repeat(64))).unwrap();
    let o = run_as_the_guide_does(&env, &script);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("sha256: is empty"), "{o:?}");
    assert!(!env.state.join("images/bookworm").exists());
}
