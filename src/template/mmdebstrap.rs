//! The first builder: `mmdebstrap --variant=minbase` from the configured
//! mirror into the tree (the way CI builds templates: ~2 min, no guest).

use super::{Builder, BuilderKind, Suite, TemplateError, PACKAGES};
use crate::exec;
use crate::steps::Steps;
use std::path::Path;
use std::time::Duration;

pub struct Mmdebstrap<'a> {
    pub program: &'a Path,
    pub suite: &'a Suite,
    /// `http://HOST/DIR`, from the config.
    pub mirror: &'a str,
    pub timeout: Duration,
}

impl Builder for Mmdebstrap<'_> {
    fn kind(&self) -> BuilderKind {
        BuilderKind::Mmdebstrap
    }

    fn make_tree(&self, tree: &Path, steps: &Steps) -> Result<(), TemplateError> {
        let source = format!("deb {} {} main", self.mirror, self.suite.as_str());
        let args: Vec<String> = vec![
            "--variant=minbase".into(),
            "--mode=root".into(),
            format!("--include={}", PACKAGES.join(",")),
            // Before the kernel package makes its initrd: only what finds
            // the root disk (see template::boot::INITRD_MODULES).
            super::boot::essential_hook(),
            "--dpkgopt=path-exclude=/usr/share/man/*".into(),
            "--dpkgopt=path-exclude=/usr/share/doc/*".into(),
            "--dpkgopt=path-exclude=/usr/share/locale/*".into(),
            "--dpkgopt=path-include=/usr/share/doc/*/copyright".into(),
            self.suite.as_str().into(),
            tree.display().to_string(),
            source,
        ];
        steps.step(&format!("bootstrapping Debian {} from {} (mmdebstrap)", self.suite.as_str(), self.mirror));
        exec::run(self.program, &args, self.timeout).map_err(TemplateError::Bootstrap)?;
        Ok(())
    }
}
