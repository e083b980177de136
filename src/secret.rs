//! The root password, which arrives on stdin and must end up nowhere but
//! the per-VM media. `CryptHash` (and [`RootPassword`], which holds one)
//! has no `Display` and a redacted `Debug`, so it cannot slip into a
//! message, a log line or an error by accident.

use crate::types::Rule;
use std::fmt;
use std::io::Read;

/// Longest stdin we read: a yescrypt or SHA-512 hash is ~120 bytes; a
/// longer line is refused without reading the rest into memory.
pub const MAX_STDIN: u64 = 1024;

const CRYPT_ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn crypt_chars(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| CRYPT_ALPHABET.contains(&b))
}

/// A crypt(3) hash of the root password: `$6$` (SHA-512) or `$y$` (yescrypt).
#[derive(Clone, PartialEq, Eq)]
pub struct CryptHash(String);

impl fmt::Debug for CryptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CryptHash(<redacted>)")
    }
}

impl CryptHash {
    /// Accepts a well-formed crypt hash as is.
    pub fn parse_hash(s: &str) -> Result<Self, Rule> {
        const RULE: Rule = Rule("looks like a crypt hash but is not a well-formed $6$ (SHA-512) or $y$ (yescrypt) hash");
        let ok = if let Some(rest) = s.strip_prefix("$6$") {
            let parts: Vec<&str> = rest.split('$').collect();
            let (salt, hash) = match parts.as_slice() {
                [r, salt, hash] if r.starts_with("rounds=") => {
                    let n = &r["rounds=".len()..];
                    if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(RULE);
                    }
                    (*salt, *hash)
                }
                [salt, hash] => (*salt, *hash),
                _ => return Err(RULE),
            };
            salt.len() <= 16 && crypt_chars(salt) && hash.len() == 86 && crypt_chars(hash)
        } else if let Some(rest) = s.strip_prefix("$y$") {
            let parts: Vec<&str> = rest.split('$').collect();
            matches!(parts.as_slice(), [params, salt, hash]
                if crypt_chars(params) && crypt_chars(salt) && salt.len() <= 86 && hash.len() == 43 && crypt_chars(hash))
        } else {
            false
        };
        if ok {
            Ok(CryptHash(s.to_owned()))
        } else {
            Err(RULE)
        }
    }

    /// Hashes a cleartext password at once with SHA-512 crypt and a fresh
    /// random salt; the cleartext is not kept.
    pub fn hash_cleartext(password: &str) -> Result<Self, Rule> {
        let params = sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT)
            .map_err(|_| Rule("could not hash the password"))?;
        let h = sha_crypt::sha512_simple(password, &params).map_err(|_| Rule("could not hash the password"))?;
        Self::parse_hash(&h)
    }

    /// The hash of a random password that nobody ever sees: for a guest
    /// whose root account is locked afterwards anyway (a template build).
    pub fn random() -> std::io::Result<Self> {
        let mut b: [u8; 24] = random_bytes()?;
        let pw: String = b.iter().map(|x| format!("{x:02x}")).collect();
        b.iter_mut().for_each(|x| *x = 0);
        Self::hash_cleartext(&pw).map_err(|r| std::io::Error::other(r.0))
    }

    /// One line from the caller: a crypt hash, or a cleartext password.
    pub fn from_line(line: &[u8]) -> Result<Self, Rule> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Err(Rule("is empty: give the root password or its crypt hash on standard input"));
        }
        let s = std::str::from_utf8(line).map_err(|_| Rule("must be UTF-8 text"))?;
        if s.chars().any(|c| c.is_control()) {
            return Err(Rule("must be one line without control characters"));
        }
        // remctl's stdin=last takes the last argument, whatever it is: a
        // caller who forgot the password would otherwise get `--no-start`
        // as the root password of a real install.
        let looks_like_argument = ["--json", "--no-start"].contains(&s)
            || ["hostname=", "image=", "template=", "keys="].iter().any(|k| s.starts_with(k));
        if looks_like_argument {
            return Err(Rule("looks like an argument, not a password: give the password (or its hash) as the last argument"));
        }
        if s.starts_with("$6$") || s.starts_with("$y$") {
            Self::parse_hash(s)
        } else {
            Self::hash_cleartext(s)
        }
    }

    /// Reads the password line from `r`, never more than `MAX_STDIN` bytes.
    pub fn read_from(r: impl Read) -> Result<Self, Rule> {
        read_line(r, Self::from_line)
    }

    /// The hash itself, for the one place it belongs: the rendered preseed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Root's password on the installed system: a crypt hash, or none at all
/// (the account locked: `!` in /etc/shadow), which only an owner who gets
/// in with an SSH key may ask for (see `rootlogin::RootLogin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootPassword {
    Hash(CryptHash),
    Locked,
}

impl RootPassword {
    /// One line from the caller: empty (nothing, or just a line end) means
    /// no password; anything else is what [`CryptHash::from_line`] takes.
    pub fn from_line(line: &[u8]) -> Result<Self, Rule> {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            return Ok(RootPassword::Locked);
        }
        CryptHash::from_line(line).map(RootPassword::Hash)
    }

    /// Reads the password line from `r`, never more than `MAX_STDIN` bytes.
    pub fn read_from(r: impl Read) -> Result<Self, Rule> {
        read_line(r, Self::from_line)
    }

    pub fn hash(&self) -> Option<&CryptHash> {
        match self {
            RootPassword::Hash(h) => Some(h),
            RootPassword::Locked => None,
        }
    }
}

/// The caller's one line from `r` (never more than `MAX_STDIN` bytes
/// read), parsed by `parse`; the bytes are wiped whatever the outcome.
fn read_line<T>(r: impl Read, parse: impl FnOnce(&[u8]) -> Result<T, Rule>) -> Result<T, Rule> {
    let mut buf = Vec::with_capacity(256);
    let read = r.take(MAX_STDIN + 1).read_to_end(&mut buf);
    let result = match read {
        Err(_) => Err(Rule("could not be read from standard input")),
        Ok(_) if buf.len() as u64 > MAX_STDIN => Err(Rule("is too long (at most 1024 bytes)")),
        Ok(_) => parse(&buf),
    };
    buf.iter_mut().for_each(|b| *b = 0);
    result
}

/// `N` bytes from the kernel's random source (getrandom(2)): salts,
/// throwaway passwords, file system UUIDs.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(format!("cannot read random bytes: {e}")))?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_is_hashed_with_fresh_salt_and_verifies() {
        let a = CryptHash::from_line(b"correct horse\n").unwrap();
        let b = CryptHash::from_line(b"correct horse").unwrap();
        assert!(a.expose().starts_with("$6$"));
        assert_ne!(a, b, "each hash gets its own salt");
        assert!(sha_crypt::sha512_check("correct horse", a.expose()).is_ok());
        assert!(sha_crypt::sha512_check("wrong", a.expose()).is_err());
    }

    #[test]
    fn hashes_pass_through_and_malformed_ones_are_refused() {
        let h = CryptHash::hash_cleartext("x").unwrap();
        assert_eq!(CryptHash::from_line(h.expose().as_bytes()).unwrap(), h);
        let y = "$y$j9T$abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
        assert!(CryptHash::from_line(y.as_bytes()).is_ok());
        for bad in ["$6$salt$short", "$y$j9T$salt", "$6$sa lt$x", "$6$rounds=$s$h"] {
            assert!(CryptHash::from_line(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_characters_and_empty_input_are_refused() {
        for bad in [&b""[..], b"\n", b"a\nb", b"a\0b", b"a\tb", b"\x1b[31m", b"\xff\xfe", b"--no-start", b"image=x"] {
            assert!(CryptHash::from_line(bad).is_err());
        }
    }

    #[test]
    fn oversized_stdin_is_refused_without_reading_it_all() {
        let endless = std::io::repeat(b'a');
        assert!(CryptHash::read_from(endless).is_err());
    }

    #[test]
    fn random_hashes_differ_and_are_well_formed() {
        let (a, b) = (CryptHash::random().unwrap(), CryptHash::random().unwrap());
        assert!(a.expose().starts_with("$6$"));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let h = CryptHash::hash_cleartext("pw").unwrap();
        assert!(!format!("{h:?}").contains('$'));
        assert!(!format!("{:?}", RootPassword::Hash(h)).contains('$'));
    }

    #[test]
    fn an_empty_line_is_no_password_and_anything_else_a_hash() {
        for empty in [&b""[..], b"\n", b"\r\n"] {
            assert_eq!(RootPassword::from_line(empty).unwrap(), RootPassword::Locked, "{empty:?}");
        }
        assert_eq!(RootPassword::read_from(&b"\n"[..]).unwrap(), RootPassword::Locked);
        let RootPassword::Hash(h) = RootPassword::from_line(b"secret\n").unwrap() else { panic!("no hash") };
        assert!(sha_crypt::sha512_check("secret", h.expose()).is_ok());
        // Still refused: more than one line, control characters, arguments.
        for bad in [&b"\n\n"[..], b" \x1b", b"keys=none", b"--json"] {
            assert!(RootPassword::from_line(bad).is_err(), "{bad:?}");
        }
        assert!(RootPassword::read_from(std::io::repeat(b'a')).is_err());
    }
}
