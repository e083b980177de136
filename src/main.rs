//! argv → request → one place that turns the result into output and an
//! exit code.

use guest_installer::error::Error;
use guest_installer::{cli, handle, Invocation};
use serde_json::{json, Value};
use std::io::Write;

fn main() {
    // The qemu driver's supervisor: our own binary under another name.
    if let Some(code) = guest_installer::hypervisor::qemu::supervisor::main_if_supervisor() {
        std::process::exit(code);
    }
    // Everything we create is for root alone unless we say otherwise.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let json = cli::wants_json(&args);
    let remote_user = std::env::var_os("REMOTE_USER");
    let inv = Invocation { args, remote_user: remote_user.as_deref(), real_uid: nix::unistd::getuid().as_raw() };

    let result = std::panic::catch_unwind(|| handle(&inv, &mut std::io::stdin().lock()))
        .unwrap_or_else(|_| Err(Error::failed("internal error (a bug): please report it")));

    let mut out = std::io::stdout().lock();
    let code = match result {
        Ok(outcome) => {
            if json {
                let mut doc = serde_json::Map::new();
                doc.insert("ok".into(), Value::Bool(true));
                doc.extend(outcome.json);
                let _ = writeln!(out, "{}", Value::Object(doc));
            } else {
                let _ = out.write_all(outcome.human.as_bytes());
            }
            0
        }
        Err(e) => {
            if json {
                let _ = writeln!(out, "{}", json!({"ok": false, "error": {"kind": e.kind.as_str(), "message": e.message}}));
            } else {
                eprintln!("guest-installer: {}: {}", e.kind, e.message);
            }
            e.kind.exit_code()
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}
