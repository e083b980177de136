//! `images` and `image import`.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::image::{self, ImportRequest};
use crate::types::{ImageName, Sha256Hex};
use serde_json::Value;
use std::path::Path;

pub fn list(ctx: &Ctx) -> Result<Outcome> {
    let mut human = String::new();
    let mut rows = Vec::new();
    for i in image::list(&ctx.config.images_dir())? {
        let m = &i.manifest;
        human.push_str(&format!("{:<24} sha256:{} {}\n", m.name, m.source_sha256, if m.layout.xen_kernel.is_some() { "hvm+pv" } else { "hvm" }));
        rows.push(Value::Object(obj([
            ("name", Value::from(m.name.as_str())),
            ("sha256", Value::from(m.source_sha256.as_str())),
            ("imported_at", Value::from(crate::state::rfc3339(m.imported_at))),
            ("pv", Value::from(m.layout.xen_kernel.is_some())),
        ])));
    }
    if rows.is_empty() {
        human.push_str("no images imported\n");
    }
    Ok(Outcome { human, json: obj([("images", Value::Array(rows))]) })
}

pub fn import(ctx: &Ctx, name: &ImageName, iso: &Path, sha256: &Sha256Hex) -> Result<Outcome> {
    ctx.require_local_admin()?;
    let iso = std::fs::canonicalize(iso).map_err(|e| Error::invalid(format!("cannot read the ISO {}: {e}", iso.display())))?;
    if !std::fs::metadata(&iso).is_ok_and(|m| m.is_file()) {
        return Err(Error::invalid(format!("{} is not a regular file", iso.display())));
    }
    // No lock: the import builds in a private directory and renames it into
    // place without replacing, so of two imports of one name one wins.
    let m = image::import(
        &ctx.config.images_dir(),
        &ImportRequest { name, iso: &iso, sha256, xorriso: ctx.config.xorriso.path(), timeout: ctx.config.timeouts.tool() },
        &crate::steps::Steps::stderr(),
    )?;
    Ok(Outcome {
        human: format!("{}: imported ({} files, {} bytes){}\n", m.name, m.files, m.bytes, if m.layout.xen_kernel.is_some() { ", with a PV installer" } else { "" }),
        json: obj([
            ("name", Value::from(m.name.as_str())),
            ("sha256", Value::from(m.source_sha256.as_str())),
            ("files", Value::from(m.files)),
            ("bytes", Value::from(m.bytes)),
            ("pv", Value::from(m.layout.xen_kernel.is_some())),
        ]),
    })
}
