//! Just enough of QMP (qemu's JSON control protocol, on a unix socket in
//! the VM's directory) to ask a guest to power down or reboot itself.

use super::HvError;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends one command; Ok once qemu accepted it.
pub fn execute(sock: &Path, command: &str, arguments: Option<Value>, timeout: Duration) -> Result<(), HvError> {
    let err = |message: String| HvError::Qmp { path: sock.into(), message };
    let stream = UnixStream::connect(sock).map_err(|e| err(e.to_string()))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| err(e.to_string()))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| err(e.to_string()))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| err(e.to_string()))?);
    let mut w = stream;
    // The greeting, then capabilities negotiation, then the command.
    read_reply(&mut reader, true).map_err(err)?;
    for msg in [json!({"execute": "qmp_capabilities"}), {
        let mut m = json!({"execute": command});
        if let Some(a) = &arguments {
            m["arguments"] = a.clone();
        }
        m
    }] {
        let mut line = serde_json::to_vec(&msg).expect("json");
        line.push(b'\n');
        w.write_all(&line).map_err(|e| err(e.to_string()))?;
        read_reply(&mut reader, false).map_err(err)?;
    }
    Ok(())
}

/// Reads lines until the greeting (`QMP`) or a reply (`return`/`error`),
/// skipping events. Lines are bounded: qemu's replies here are small.
fn read_reply(r: &mut impl BufRead, greeting: bool) -> Result<(), String> {
    for _ in 0..64 {
        let mut line = Vec::new();
        let n = std::io::Read::take(&mut *r, 64 * 1024).read_until(b'\n', &mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("qemu closed the connection".into());
        }
        let v: Value = serde_json::from_slice(&line).map_err(|e| format!("not QMP: {e}"))?;
        if greeting && v.get("QMP").is_some() {
            return Ok(());
        }
        if !greeting && v.get("return").is_some() {
            return Ok(());
        }
        if let Some(e) = v.get("error") {
            let desc = e.get("desc").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(format!("qemu refused: {}", desc.chars().take(200).collect::<String>()));
        }
    }
    Err("no reply from qemu".into())
}
