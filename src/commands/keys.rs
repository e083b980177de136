//! `key add|list|remove`: a principal's SSH public keys. Each principal
//! manages its own; admins may name another with `principal=P`.

use super::{obj, Ctx, Outcome};
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::keystore::{KeyStore, MAX_KEYS_PER_PRINCIPAL};
use crate::sshkey::{Fingerprint, PublicKey};
use crate::types::Principal;
use serde_json::Value;

/// Whose keys a request is about: the caller's own, or (admins only) the
/// principal it names. Decided before the store is touched.
fn whose<'a>(ctx: &'a Ctx, named: Option<&'a Principal>) -> Result<&'a Principal> {
    match (named, ctx.caller) {
        (Some(p), Caller::Remote(me)) if p == me => Ok(p),
        (Some(p), _) => {
            ctx.require_admin()?;
            Ok(p)
        }
        (None, Caller::Remote(me)) => Ok(me),
        (None, Caller::LocalRoot) => {
            Err(Error::invalid("root on the host has no keys of its own: name whose keys with principal=P"))
        }
    }
}

fn store(ctx: &Ctx) -> KeyStore {
    KeyStore::new(ctx.config.state_dir.path())
}

/// A key as replies show it.
pub fn key_json(k: &PublicKey) -> Value {
    Value::Object(obj([
        ("type", Value::from(k.kind().as_str())),
        ("bits", Value::from(k.bits())),
        ("fingerprint", Value::from(k.fingerprint().as_str())),
        ("comment", k.comment().map(Value::from).unwrap_or(Value::Null)),
    ]))
}

fn key_text(k: &PublicKey) -> String {
    format!("{} {} ({} {})", k.fingerprint(), k.comment().unwrap_or("(no comment)"), k.kind(), k.bits())
}

pub fn add(ctx: &Ctx, key: &PublicKey, named: Option<&Principal>) -> Result<Outcome> {
    let p = whose(ctx, named)?;
    let added = store(ctx).add(p, key)?;
    let human = format!("{p}: {} {}\n", if added { "added" } else { "already registered:" }, key_text(key));
    Ok(Outcome {
        human,
        json: obj([("principal", Value::from(p.as_str())), ("added", Value::from(added)), ("key", key_json(key))]),
    })
}

pub fn list(ctx: &Ctx, named: Option<&Principal>) -> Result<Outcome> {
    let p = whose(ctx, named)?;
    let keys = store(ctx).keys_of(p)?;
    let mut human = String::new();
    for k in &keys {
        human.push_str(&key_text(k));
        human.push('\n');
    }
    if keys.is_empty() {
        human.push_str(&format!("{p} has no SSH keys (add one: key add \"$(cat ~/.ssh/id_ed25519.pub)\")\n"));
    } else {
        human.push_str(&format!("{} of at most {MAX_KEYS_PER_PRINCIPAL} keys\n", keys.len()));
    }
    Ok(Outcome {
        human,
        json: obj([
            ("principal", Value::from(p.as_str())),
            ("keys", Value::Array(keys.iter().map(key_json).collect())),
            ("max_keys", Value::from(MAX_KEYS_PER_PRINCIPAL)),
        ]),
    })
}

pub fn remove(ctx: &Ctx, fp: &Fingerprint, named: Option<&Principal>) -> Result<Outcome> {
    let p = whose(ctx, named)?;
    let removed = store(ctx).remove(p, fp)?;
    Ok(Outcome {
        human: format!("{p}: removed {}\n", key_text(&removed)),
        json: obj([("principal", Value::from(p.as_str())), ("removed", key_json(&removed))]),
    })
}
