//! An OpenSSH public key line, as a caller registers it: one key of a type
//! we accept, its base64 blob decoded and checked against that type, and
//! an optional comment of a few safe characters. A [`PublicKey`] is always
//! safe to write into an `authorized_keys` file, an identity seed or a
//! preseed: it holds no option, no second line, no quote and no control
//! character.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// The longest key line we take (an RSA key of 16384 bits, OpenSSH's
/// largest, is ~2.8 KB of base64).
pub const MAX_LINE: usize = 8192;
/// The longest comment we keep.
pub const MAX_COMMENT: usize = 128;
/// The smallest RSA modulus we accept.
pub const MIN_RSA_BITS: u32 = 3072;
const MAX_RSA_BITS: u32 = 16384;

/// The key types we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    SkEd25519,
    SkEcdsaP256,
    Rsa,
}

impl KeyType {
    pub const ALL: [KeyType; 7] = [
        KeyType::Ed25519,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::EcdsaP521,
        KeyType::SkEd25519,
        KeyType::SkEcdsaP256,
        KeyType::Rsa,
    ];

    /// The type's name in a key line and inside its blob.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ssh-ed25519",
            KeyType::EcdsaP256 => "ecdsa-sha2-nistp256",
            KeyType::EcdsaP384 => "ecdsa-sha2-nistp384",
            KeyType::EcdsaP521 => "ecdsa-sha2-nistp521",
            KeyType::SkEd25519 => "sk-ssh-ed25519@openssh.com",
            KeyType::SkEcdsaP256 => "sk-ecdsa-sha2-nistp256@openssh.com",
            KeyType::Rsa => "ssh-rsa",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// An ECDSA type's curve name and uncompressed point length.
    fn curve(self) -> Option<(&'static str, usize)> {
        match self {
            KeyType::EcdsaP256 | KeyType::SkEcdsaP256 => Some(("nistp256", 65)),
            KeyType::EcdsaP384 => Some(("nistp384", 97)),
            KeyType::EcdsaP521 => Some(("nistp521", 133)),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key line was refused. The caller's own text is never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is empty: give one OpenSSH public key line, e.g. the contents of ~/.ssh/id_ed25519.pub")]
    Empty,
    #[error("is longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("must be a single line (no newline)")]
    MultipleLines,
    #[error("contains control characters")]
    Control,
    #[error("starts with options (command=, from=, ...): give the key alone, TYPE BASE64 [COMMENT]")]
    Options,
    #[error(
        "has a key type we do not accept (accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521, \
         sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, ssh-rsa of at least 3072 bits)"
    )]
    UnknownType,
    #[error("has no key data after its type")]
    MissingBlob,
    #[error("has key data that is not valid base64")]
    BadBase64,
    #[error("has key data that is not a well-formed {0} key")]
    BadBlob(KeyType),
    #[error("has key data of another type than the line names")]
    TypeMismatch,
    #[error("is an RSA key of {0} bits: RSA keys need at least 3072 bits (better: ssh-keygen -t ed25519)")]
    RsaTooShort(u32),
    #[error("has an RSA key larger than 16384 bits")]
    RsaTooLong,
    #[error("has a comment longer than {MAX_COMMENT} bytes")]
    CommentTooLong,
    #[error("has a comment with characters other than letters, digits, spaces and @._:,+/=()#-")]
    CommentChars,
}

/// A validated public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyType,
    blob: Vec<u8>,
    comment: Option<String>,
    bits: u32,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.kind, self.fingerprint())
    }
}

/// Whether `c` may appear in a kept comment. Also the guest's identity
/// script's rule: it checks the same set again.
pub fn comment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " @._:,+/=()#-".contains(c)
}

impl PublicKey {
    /// Parses one key line: `TYPE BASE64 [COMMENT]`.
    pub fn parse_line(line: &str) -> Result<Self, KeyError> {
        if line.len() > MAX_LINE {
            return Err(KeyError::TooLong);
        }
        // One trailing newline, as `cat id.pub` gives, is not a second line.
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.contains(['\n', '\r']) {
            return Err(KeyError::MultipleLines);
        }
        if line.chars().any(char::is_control) {
            return Err(KeyError::Control);
        }
        let line = line.trim_matches(' ');
        if line.is_empty() {
            return Err(KeyError::Empty);
        }
        let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
        let Some(kind) = KeyType::from_name(first) else {
            // authorized_keys options come before the type: `command="..."`,
            // `from=...`, `no-pty,restrict`, ...
            let looks_like_options = first.contains(['=', ',', '"'])
                || ["restrict", "no-pty", "no-port-forwarding", "no-agent-forwarding", "no-x11-forwarding", "cert-authority", "no-user-rc", "pty", "no-touch-required", "verify-required"].contains(&first);
            return Err(if looks_like_options { KeyError::Options } else { KeyError::UnknownType });
        };
        let rest = rest.trim_start_matches(' ');
        let (b64, comment) = rest.split_once(' ').unwrap_or((rest, ""));
        if b64.is_empty() {
            return Err(KeyError::MissingBlob);
        }
        let blob = STANDARD.decode(b64).map_err(|_| KeyError::BadBase64)?;
        let bits = check_blob(kind, &blob)?;
        let comment = comment.trim_matches(' ');
        let comment = if comment.is_empty() {
            None
        } else if comment.len() > MAX_COMMENT {
            return Err(KeyError::CommentTooLong);
        } else if !comment.chars().all(comment_char) {
            return Err(KeyError::CommentChars);
        } else {
            Some(comment.to_owned())
        };
        Ok(PublicKey { kind, blob, comment, bits })
    }

    pub fn kind(&self) -> KeyType {
        self.kind
    }

    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The key's size in bits, as `ssh-keygen -l` prints it.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The SHA256 fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_blob(&self.blob)
    }

    /// `TYPE BASE64 [COMMENT]`: a line of an `authorized_keys` file.
    pub fn line(&self) -> String {
        let mut s = format!("{} {}", self.kind, STANDARD.encode(&self.blob));
        if let Some(c) = &self.comment {
            s.push(' ');
            s.push_str(c);
        }
        s
    }
}

/// A key's SHA256 fingerprint: `SHA256:` and 43 characters of unpadded base64.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of_blob(blob: &[u8]) -> Self {
        Fingerprint(format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob))))
    }

    pub fn parse(s: &str) -> Result<Self, crate::types::Rule> {
        const RULE: crate::types::Rule =
            crate::types::Rule("must be a SHA256 fingerprint as `ssh-keygen -lf KEY.pub` prints it (SHA256: and 43 characters)");
        let b64 = s.strip_prefix("SHA256:").ok_or(RULE)?;
        match STANDARD_NO_PAD.decode(b64) {
            Ok(d) if d.len() == 32 && b64.len() == 43 => Ok(Fingerprint(s.to_owned())),
            _ => Err(RULE),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads SSH wire-format fields (RFC 4251: uint32 length, then bytes).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (s, rest) = rest.split_at(len);
        self.0 = rest;
        Some(s)
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// Checks `blob` is a well-formed key of `kind`; returns its size in bits.
fn check_blob(kind: KeyType, blob: &[u8]) -> Result<u32, KeyError> {
    let bad = KeyError::BadBlob(kind);
    let mut w = Wire(blob);
    let name = w.string().ok_or(bad.clone())?;
    if name != kind.as_str().as_bytes() {
        return Err(if KeyType::ALL.iter().any(|t| t.as_str().as_bytes() == name) { KeyError::TypeMismatch } else { bad });
    }
    let bits = match kind {
        KeyType::Ed25519 | KeyType::SkEd25519 => {
            if w.string().ok_or(bad.clone())?.len() != 32 {
                return Err(bad);
            }
            256
        }
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 | KeyType::SkEcdsaP256 => {
            let (curve, point_len) = kind.curve().expect("an ECDSA type");
            if w.string().ok_or(bad.clone())? != curve.as_bytes() {
                return Err(bad);
            }
            let q = w.string().ok_or(bad.clone())?;
            // Uncompressed points only, as OpenSSH writes them.
            if q.len() != point_len || q[0] != 0x04 {
                return Err(bad);
            }
            match kind {
                KeyType::EcdsaP384 => 384,
                KeyType::EcdsaP521 => 521,
                _ => 256,
            }
        }
        KeyType::Rsa => {
            let e = mpint(w.string().ok_or(bad.clone())?).ok_or(bad.clone())?;
            let n = mpint(w.string().ok_or(bad.clone())?).ok_or(bad.clone())?;
            // e odd and > 1, n odd: anything else is no RSA key.
            if e.is_empty() || e.len() > 8 || e.last().is_some_and(|b| b & 1 == 0) || e == [1] {
                return Err(bad);
            }
            if n.last().is_none_or(|b| b & 1 == 0) {
                return Err(bad);
            }
            let bits = (n.len() as u32) * 8 - n[0].leading_zeros();
            if bits > MAX_RSA_BITS {
                return Err(KeyError::RsaTooLong);
            }
            if bits < MIN_RSA_BITS {
                return Err(KeyError::RsaTooShort(bits));
            }
            bits
        }
    };
    if matches!(kind, KeyType::SkEd25519 | KeyType::SkEcdsaP256) {
        // The security key's application, e.g. "ssh:".
        let app = w.string().ok_or(bad.clone())?;
        if app.is_empty() || std::str::from_utf8(app).is_err() {
            return Err(bad);
        }
    }
    if !w.done() {
        return Err(bad);
    }
    Ok(bits)
}

/// A positive SSH mpint's magnitude without leading zeros; `None` for a
/// negative one or one with a needless leading zero byte.
fn mpint(b: &[u8]) -> Option<&[u8]> {
    match b {
        [] => Some(b),
        [0, rest @ ..] => (rest.first().is_some_and(|x| x & 0x80 != 0)).then_some(rest),
        [first, ..] => (first & 0x80 == 0).then_some(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(fields: &[&[u8]]) -> String {
        let mut b = Vec::new();
        for f in fields {
            b.extend_from_slice(&(f.len() as u32).to_be_bytes());
            b.extend_from_slice(f);
        }
        STANDARD.encode(b)
    }

    fn ed25519() -> String {
        format!("ssh-ed25519 {} alice@laptop", blob(&[b"ssh-ed25519", &[7u8; 32]]))
    }

    #[test]
    fn an_ed25519_line_round_trips() {
        let k = PublicKey::parse_line(&format!("{}\n", ed25519())).unwrap();
        assert_eq!(k.kind(), KeyType::Ed25519);
        assert_eq!(k.comment(), Some("alice@laptop"));
        assert_eq!(k.line(), ed25519());
        assert_eq!(k.bits(), 256);
        assert!(Fingerprint::parse(k.fingerprint().as_str()).is_ok());
    }

    #[test]
    fn bad_shapes_are_refused() {
        let e = ed25519();
        let wrong_len = format!("ssh-ed25519 {}", blob(&[b"ssh-ed25519", &[7u8; 31]]));
        let trailing = format!("ssh-ed25519 {}", blob(&[b"ssh-ed25519", &[7u8; 32], b"x"]));
        let mismatch = format!("ssh-ed25519 {}", blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &[4u8; 65]]));
        let ecdsa_curve = format!("ecdsa-sha2-nistp256 {}", blob(&[b"ecdsa-sha2-nistp256", b"nistp384", &[4u8; 65]]));
        let mut n = vec![0u8; 1 + 2048 / 8];
        n[1] = 0xc1;
        *n.last_mut().unwrap() = 1;
        let rsa2048 = format!("ssh-rsa {}", blob(&[b"ssh-rsa", &[1, 0, 1], &n]));
        let cases: Vec<(String, KeyError)> = vec![
            (String::new(), KeyError::Empty),
            (format!("command=\"/bin/sh\" {e}"), KeyError::Options),
            (format!("restrict {e}"), KeyError::Options),
            (format!("{e}\n{e}"), KeyError::MultipleLines),
            (format!("{e}\x1b[2J"), KeyError::Control),
            (format!("{e} {}", "x".repeat(200)), KeyError::CommentTooLong),
            (format!("{e} it's mine"), KeyError::CommentChars),
            ("ssh-dss AAAA".into(), KeyError::UnknownType),
            ("ssh-ed25519".into(), KeyError::MissingBlob),
            ("ssh-ed25519 !!!".into(), KeyError::BadBase64),
            (wrong_len, KeyError::BadBlob(KeyType::Ed25519)),
            (trailing, KeyError::BadBlob(KeyType::Ed25519)),
            (mismatch, KeyError::TypeMismatch),
            (ecdsa_curve, KeyError::BadBlob(KeyType::EcdsaP256)),
            (rsa2048, KeyError::RsaTooShort(2048)),
            ("x".repeat(MAX_LINE + 1), KeyError::TooLong),
        ];
        for (line, want) in cases {
            assert_eq!(PublicKey::parse_line(&line).unwrap_err(), want, "{line:?}");
        }
    }

    #[test]
    fn fingerprints_parse_strictly() {
        assert!(Fingerprint::parse("SHA256:abc").is_err());
        assert!(Fingerprint::parse("MD5:aa:bb").is_err());
        let fp = Fingerprint::of_blob(b"x");
        assert_eq!(Fingerprint::parse(fp.as_str()).unwrap(), fp);
    }
}
