//! What the door says to `console-serve` and what it hears back: one line
//! each way, then raw bytes. Every field is parsed into its type on the
//! root side; the door is not trusted to have checked anything.
//!
//! ```text
//! door → serve:   console PRINCIPAL VM\n
//! serve → door:   ok\n                       then the console, both ways
//!                 error KIND MESSAGE\n       then the connection closes
//! ```

use crate::error::{Error, Kind};
use crate::types::{Principal, VmName};

/// The longest line either side reads (a principal is at most 256 bytes,
/// a machine name 63; a message is cut to fit).
pub const MAX_LINE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub principal: Principal,
    pub vm: VmName,
}

impl Request {
    pub fn line(&self) -> String {
        format!("console {} {}\n", self.principal, self.vm)
    }

    /// Parses a request line (without its newline). The reason for a
    /// refusal never quotes the line: it came from outside.
    pub fn parse(line: &str) -> Result<Request, &'static str> {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("console"), Some(p), Some(vm), None) => Ok(Request {
                principal: Principal::parse(p).map_err(|_| "the request's principal is not a principal")?,
                vm: VmName::parse(vm).map_err(|_| "the request's machine name is not a machine name")?,
            }),
            _ => Err("the request is not `console PRINCIPAL VM`"),
        }
    }
}

/// The server's answer line.
pub fn ok_line() -> &'static str {
    "ok\n"
}

/// An error as one line: kind, then the message with anything that
/// could break the line (or a terminal) replaced.
pub fn error_line(e: &Error) -> String {
    let msg: String = e.message.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_LINE - 32).collect();
    format!("error {} {}\n", e.kind.as_str(), msg)
}

/// The door's reading of the answer: `Ok(())` to go on, or the error the
/// server sent (an unreadable answer is a failure).
pub fn parse_reply(line: &str) -> Result<(), Error> {
    if line == "ok" {
        return Ok(());
    }
    let bad = || Error::failed("the console service gave an answer this program does not understand");
    let rest = line.strip_prefix("error ").ok_or_else(bad)?;
    let (kind, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    let kind = Kind::parse(kind).ok_or_else(bad)?;
    let msg: String = msg.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    Err(Error::new(kind, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_anything_else_is_refused() {
        let r = Request { principal: Principal::parse("bob/admin@EX.ORG").unwrap(), vm: VmName::parse("web1").unwrap() };
        assert_eq!(r.line(), "console bob/admin@EX.ORG web1\n");
        assert_eq!(Request::parse(r.line().trim_end()).unwrap(), r);
        for bad in [
            "",
            "console",
            "console bob@EX.ORG",
            "console bob@EX.ORG web1 extra",
            "console bob@EX.ORG  web1",
            "console bob@EX.ORG ../web1",
            "console bob@EX.ORG WEB1",
            "console bob web1",
            "console \"bob\"@EX.ORG web1",
            "attach bob@EX.ORG web1",
            "console bob@EX.ORG web1\r",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replies_carry_the_kind_and_a_one_line_message() {
        assert!(parse_reply(ok_line().trim_end()).is_ok());
        let line = error_line(&Error::busy("taken\nby\x1b[2Jsomeone"));
        assert_eq!(line.matches('\n').count(), 1);
        let e = parse_reply(line.trim_end()).unwrap_err();
        assert_eq!(e.kind, Kind::Busy);
        assert!(!e.message.contains('\x1b'), "{}", e.message);
        for bad in ["", "okay", "error", "error nosuchkind message", "ERROR busy x"] {
            assert_eq!(parse_reply(bad).unwrap_err().kind, Kind::Failed, "{bad:?}");
        }
    }
}
