//! Just enough of QMP (qemu's JSON control protocol, on a unix socket in
//! the VM's directory) to ask a guest to power down or reboot itself.

use super::HvError;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends one command over the control socket at `sock`; Ok once qemu
/// accepted it.
pub fn execute(sock: &Path, command: &str, arguments: Option<Value>, timeout: Duration) -> Result<(), HvError> {
    let err = |message: String| HvError::Qmp { path: sock.into(), message };
    let stream = UnixStream::connect(sock).map_err(|e| err(e.to_string()))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| err(e.to_string()))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| err(e.to_string()))?;
    Session::start(&stream).and_then(|mut s| s.execute(command, arguments)).map_err(err)
}

/// A QMP conversation on a connected stream, past the greeting and the
/// capabilities negotiation. Both the driver (through the socket) and the
/// supervisor (which holds qemu's end from the start) talk QMP through it.
pub struct Session {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Session {
    pub fn start(stream: &UnixStream) -> Result<Session, String> {
        let clone = || stream.try_clone().map_err(|e| e.to_string());
        let mut s = Session { reader: BufReader::new(clone()?), writer: clone()? };
        read_reply(&mut s.reader, true)?;
        s.execute("qmp_capabilities", None)?;
        Ok(s)
    }

    /// Sends `command`; Ok once qemu accepted it.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<(), String> {
        let mut m = json!({"execute": command});
        if let Some(a) = arguments {
            m["arguments"] = a;
        }
        let mut line = serde_json::to_vec(&m).expect("json");
        line.push(b'\n');
        self.writer.write_all(&line).map_err(|e| e.to_string())?;
        read_reply(&mut self.reader, false)
    }
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
