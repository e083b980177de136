//! The callers' SSH public keys: `keys/` under the state dir, one file per
//! principal (root's alone, written atomically). `install` puts a caller's
//! keys into the new system's `authorized_keys`; the console door
//! identifies a caller by one of them.
//!
//! A key belongs to at most one principal: at the console door a key *is*
//! the caller's identity, so two principals sharing one would make it
//! ambiguous.

use crate::fsutil::{self, io_err, PathIo};
use crate::sshkey::{Fingerprint, KeyError, PublicKey};
use crate::types::Principal;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many keys one principal may register (the man page says so too).
pub const MAX_KEYS_PER_PRINCIPAL: usize = 32;
/// A principal's file: 32 keys of at most [`crate::sshkey::MAX_LINE`], with room.
const MAX_FILE_BYTES: u64 = 512 * 1024;
/// How long a change waits for another to finish (changes take milliseconds).
const LOCK_WAIT: Duration = Duration::from_secs(10);
const SUFFIX: &str = ".keys";

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("the key {0}")]
    Key(#[from] KeyError),
    #[error("{principal} already has {MAX_KEYS_PER_PRINCIPAL} keys, the most one principal may register; remove one first (key remove SHA256:...)")]
    Full { principal: Principal },
    #[error("this key is registered to another principal; a key may identify only one principal (make a new key with ssh-keygen -t ed25519)")]
    Taken,
    #[error("{principal} has no key {fingerprint} (see key list)")]
    NoSuchKey { principal: Principal, fingerprint: Fingerprint },
    #[error("the key store file {path} is corrupt ({message}); an admin must fix or remove it")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot access the key store at {0}")]
    Io(#[from] PathIo),
    #[error("another change to the key store is in progress; try again when it has finished")]
    Busy,
}

/// What a principal's file holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    principal: Principal,
    keys: Vec<StoredKey>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    /// Kept beside the line so a lookup by fingerprint hashes nothing.
    fingerprint: String,
    line: String,
}

/// A registered key with what a listing shows.
#[derive(Debug, Clone)]
pub struct Registered {
    pub principal: Principal,
    pub key: PublicKey,
}

pub struct KeyStore {
    dir: PathBuf,
}

/// Held while the store changes.
pub struct StoreLock(#[allow(dead_code)] crate::lock::Lock);

impl KeyStore {
    pub fn new(state_dir: &Path) -> Self {
        KeyStore { dir: state_dir.join("keys") }
    }

    /// A principal's file: its name with `/` (which a file name cannot
    /// hold) as `+` (which a principal cannot hold), so the mapping is
    /// one to one.
    fn file(&self, p: &Principal) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", p.as_str().replace('/', "+")))
    }

    /// `principal`'s keys, oldest first (none if it registered none).
    pub fn keys_of(&self, principal: &Principal) -> Result<Vec<PublicKey>, KeyStoreError> {
        let path = self.file(principal);
        let Some(stored) = read(&path)? else { return Ok(Vec::new()) };
        if stored.principal != *principal {
            return Err(corrupt(&path, "its principal does not match its file name"));
        }
        stored.keys.iter().map(|k| parse_stored(&path, k)).collect()
    }

    /// Registers `key` for `principal`. `Ok(false)`: it was registered already.
    pub fn add(&self, principal: &Principal, key: &PublicKey) -> Result<bool, KeyStoreError> {
        let lock = self.lock()?;
        let fp = key.fingerprint();
        if let Some((owner, _)) = self.lookup(&fp)?.into_iter().next() {
            return if owner == *principal { Ok(false) } else { Err(KeyStoreError::Taken) };
        }
        let mut keys = self.keys_of(principal)?;
        if keys.len() >= MAX_KEYS_PER_PRINCIPAL {
            return Err(KeyStoreError::Full { principal: principal.clone() });
        }
        keys.push(key.clone());
        self.write(&lock, principal, &keys)?;
        Ok(true)
    }

    /// Removes `principal`'s key `fp`; returns it.
    pub fn remove(&self, principal: &Principal, fp: &Fingerprint) -> Result<PublicKey, KeyStoreError> {
        let lock = self.lock()?;
        let mut keys = self.keys_of(principal)?;
        let Some(i) = keys.iter().position(|k| k.fingerprint() == *fp) else {
            return Err(KeyStoreError::NoSuchKey { principal: principal.clone(), fingerprint: fp.clone() });
        };
        let removed = keys.remove(i);
        self.write(&lock, principal, &keys)?;
        Ok(removed)
    }

    /// The principal and key registered under `fp`, if any: what the
    /// console door's `AuthorizedKeysCommand` asks. Reads every file but
    /// parses only the key whose stored fingerprint matches, and checks
    /// that fingerprint against the key itself.
    pub fn lookup(&self, fp: &Fingerprint) -> Result<Vec<(Principal, PublicKey)>, KeyStoreError> {
        let mut found = Vec::new();
        for (stem, path) in self.files()? {
            let Some(stored) = read(&path)? else { continue };
            if stored.principal.as_str().replace('/', "+") != stem {
                return Err(corrupt(&path, "its principal does not match its file name"));
            }
            for k in stored.keys.iter().filter(|k| k.fingerprint == fp.as_str()) {
                let key = parse_stored(&path, k)?;
                found.push((stored.principal.clone(), key));
            }
        }
        Ok(found)
    }

    /// Every principal that has keys (for an admin's overview and the tests).
    pub fn principals(&self) -> Result<Vec<Principal>, KeyStoreError> {
        let mut out: Vec<Principal> = self.files()?.into_iter().filter_map(|(stem, _)| Principal::parse(&stem.replace('+', "/")).ok()).collect();
        out.sort();
        Ok(out)
    }

    /// The principals' files: (name without its ending, path). Hidden
    /// files (a write's temporary) are not among them.
    fn files(&self) -> Result<Vec<(String, PathBuf)>, KeyStoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PathIo::new(&self.dir, e).into()),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry.map_err(io_err(&self.dir))?.file_name();
            if let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)).filter(|n| !n.starts_with('.')) {
                out.push((stem.to_owned(), self.dir.join(&name)));
            }
        }
        Ok(out)
    }

    fn write(&self, _lock: &StoreLock, principal: &Principal, keys: &[PublicKey]) -> Result<(), KeyStoreError> {
        let path = self.file(principal);
        if keys.is_empty() {
            fsutil::remove_if_exists(&path).map_err(io_err(&path))?;
            return fsutil::sync_dir(&self.dir).map_err(|e| PathIo::new(&self.dir, e).into());
        }
        let stored = Stored {
            principal: principal.clone(),
            keys: keys.iter().map(|k| StoredKey { fingerprint: k.fingerprint().to_string(), line: k.line() }).collect(),
        };
        let mut text = serde_json::to_vec_pretty(&stored).expect("keys serialize");
        text.push(b'\n');
        fsutil::write_atomic(&path, &text, 0o600).map_err(|e| PathIo::new(&path, e).into())
    }

    /// Serialises changes: an flock on the store directory itself (made,
    /// root's alone, if missing). Waits at most [`LOCK_WAIT`], then `Busy`.
    fn lock(&self) -> Result<StoreLock, KeyStoreError> {
        match crate::lock::lock_dir_within(&self.dir, LOCK_WAIT) {
            Ok(l) => Ok(StoreLock(l)),
            Err(crate::lock::LockError::Held) => Err(KeyStoreError::Busy),
            Err(crate::lock::LockError::Io(e)) => Err(KeyStoreError::Io(e)),
        }
    }
}

fn corrupt(path: &Path, message: &str) -> KeyStoreError {
    KeyStoreError::Corrupt { path: path.into(), message: message.into() }
}

fn read(path: &Path) -> Result<Option<Stored>, KeyStoreError> {
    match fsutil::read_limited(path, MAX_FILE_BYTES) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| corrupt(path, &e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PathIo::new(path, e).into()),
    }
}

fn parse_stored(path: &Path, k: &StoredKey) -> Result<PublicKey, KeyStoreError> {
    let key = PublicKey::parse_line(&k.line).map_err(|e| corrupt(path, &format!("a key {e}")))?;
    if key.fingerprint().as_str() != k.fingerprint {
        return Err(corrupt(path, "a key's fingerprint does not match the key"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn key(n: u8) -> PublicKey {
        let mut b = Vec::new();
        for f in [&b"ssh-ed25519"[..], &[n; 32]] {
            b.extend_from_slice(&(f.len() as u32).to_be_bytes());
            b.extend_from_slice(f);
        }
        PublicKey::parse_line(&format!("ssh-ed25519 {} k{n}", base64::engine::general_purpose::STANDARD.encode(b))).unwrap()
    }

    #[test]
    fn add_list_remove_and_ownership() {
        let d = tempfile::tempdir().unwrap();
        let s = KeyStore::new(d.path());
        let (a, b) = (Principal::parse("alice/admin@EX.ORG").unwrap(), Principal::parse("bob@EX.ORG").unwrap());
        assert!(s.keys_of(&a).unwrap().is_empty());
        assert!(s.add(&a, &key(1)).unwrap());
        assert!(!s.add(&a, &key(1)).unwrap(), "adding twice changes nothing");
        assert!(matches!(s.add(&b, &key(1)), Err(KeyStoreError::Taken)));
        s.add(&b, &key(2)).unwrap();
        assert_eq!(s.keys_of(&a).unwrap(), vec![key(1)]);
        assert_eq!(s.principals().unwrap(), vec![a.clone(), b.clone()]);
        let found = s.lookup(&key(2).fingerprint()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, b);
        assert!(matches!(s.remove(&a, &key(2).fingerprint()), Err(KeyStoreError::NoSuchKey { .. })));
        assert_eq!(s.remove(&a, &key(1).fingerprint()).unwrap(), key(1));
        assert!(!s.file(&a).exists(), "an empty principal leaves no file");
    }

    #[test]
    fn the_bound_holds() {
        let d = tempfile::tempdir().unwrap();
        let s = KeyStore::new(d.path());
        let a = Principal::parse("a@EX.ORG").unwrap();
        for n in 0..MAX_KEYS_PER_PRINCIPAL as u8 {
            s.add(&a, &key(n)).unwrap();
        }
        assert!(matches!(s.add(&a, &key(200)), Err(KeyStoreError::Full { .. })));
        assert_eq!(s.keys_of(&a).unwrap().len(), MAX_KEYS_PER_PRINCIPAL);
    }
}
