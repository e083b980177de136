//! `variants.list`: Ganeti offers `guest-installer+T` for each golden
//! template T. The OS definition's `variants.list` is a link to
//! `STATE/templates/.variants.list`, which is rewritten from the templates
//! themselves whenever one is built (and by `ganeti variants`), so the
//! list never names a template this node does not have. It lives beside
//! the templates: where they are on storage the nodes share, every node
//! (one added later too) offers the same variants.

use super::GanetiError;
use crate::config::Config;
use crate::template;
use std::path::PathBuf;

/// `STATE/ganeti`: scratch space for seeds.
pub fn dir(config: &Config) -> PathBuf {
    config.state_dir.path().join("ganeti")
}

/// A dot name: no template can be called that (their names start with a
/// letter or digit).
pub fn path(config: &Config) -> PathBuf {
    config.templates_dir().join(".variants.list")
}

/// Rewrites the list from the templates present; returns their names.
pub fn refresh(config: &Config) -> Result<Vec<String>, GanetiError> {
    let names: Vec<String> = template::list(&config.templates_dir())?.into_iter().map(|t| t.manifest.name.to_string()).collect();
    let d = config.templates_dir();
    crate::fsutil::ensure_dir(&d, 0o700).map_err(|e| GanetiError::Io(format!("cannot create {}: {e}", d.display())))?;
    let mut text = String::from("# guest-installer's golden templates (rewritten by `template build`; do not edit)\n");
    for n in &names {
        text.push_str(n);
        text.push('\n');
    }
    let p = path(config);
    crate::fsutil::write_atomic(&p, text.as_bytes(), 0o644).map_err(|e| GanetiError::Io(format!("cannot write {}: {e}", p.display())))?;
    Ok(names)
}
