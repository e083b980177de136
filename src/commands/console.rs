//! `console-keys` and `console-serve`: the console door's two root-side
//! requests (see `console_door`). Both are for root on the host: sshd
//! runs the first, systemd the second; neither takes a remote caller.

use super::{obj, Ctx, Outcome};
use crate::config::UserName;
use crate::console_door::{keys, serve};
use crate::error::{Error, Result};
use crate::sshkey::Fingerprint;
use serde_json::Value;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

/// The `authorized_keys` line for the key, or nothing.
pub fn console_keys(ctx: &Ctx, user: &UserName, fp: &Fingerprint) -> Result<Outcome> {
    ctx.require_local_admin()?;
    let text = keys::answer(ctx.config, user, fp)?;
    let lines: Vec<Value> = text.lines().map(Value::from).collect();
    Ok(Outcome { human: text, json: obj([("authorized_keys", Value::from(lines))]) })
}

/// One session on the connection systemd gives as standard input (and
/// output): nothing is printed after it, the door's connection is closed.
pub fn console_serve(ctx: &Ctx) -> Result<Outcome> {
    ctx.require_local_admin()?;
    let conn = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(UnixStream::from)
        .map_err(|e| Error::failed(format!("cannot use standard input: {e}")))?;
    let s = serve::serve(ctx.config, &conn)?;
    Ok(Outcome {
        human: String::new(),
        json: obj([
            ("vm", Value::from(s.vm.as_str())),
            ("principal", Value::from(s.principal.as_str())),
            ("seconds", Value::from((s.seconds * 10.0).round() / 10.0)),
            ("ended", Value::from(s.ended)),
        ]),
    })
}
