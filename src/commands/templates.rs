//! `templates` and `template build`.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::image;
use crate::template::installer::Installer;
use crate::template::mmdebstrap::Mmdebstrap;
use crate::template::{self, BuildRequest, Builder, BuilderKind, Suite, TemplateName};
use crate::types::{ImageName, VmName};
use serde_json::Value;

pub fn list(ctx: &Ctx) -> Result<Outcome> {
    let mut human = String::new();
    let mut rows = Vec::new();
    for t in template::list(&ctx.config.templates_dir())? {
        let m = &t.manifest;
        human.push_str(&format!(
            "{:<24} image {} suite {} by {} kernel {} ({} packages)\n",
            m.name,
            m.image,
            m.suite.as_str(),
            m.builder,
            m.kernel_version,
            m.packages.len()
        ));
        rows.push(Value::Object(obj([
            ("name", Value::from(m.name.as_str())),
            ("image", Value::from(m.image.as_str())),
            ("suite", Value::from(m.suite.as_str())),
            ("builder", Value::from(m.builder.as_str())),
            ("built_at", Value::from(crate::state::rfc3339(m.built_at))),
            ("kernel_version", Value::from(m.kernel_version.as_str())),
            ("packages", Value::from(m.packages.len())),
            ("sha256", Value::from(m.root.sha256.as_str())),
        ])));
    }
    if rows.is_empty() {
        human.push_str("no templates built\n");
    }
    Ok(Outcome { human, json: obj([("templates", Value::Array(rows))]) })
}

/// The suite an image installs: from its `.disk/info`, else the default.
fn suite_of(img: &image::Image) -> Suite {
    let info = crate::fsutil::read_limited(&img.tree().join(".disk/info"), 4096).unwrap_or_default();
    Suite::from_disk_info(&String::from_utf8_lossy(&info))
        .unwrap_or_else(|| Suite::parse(template::DEFAULT_SUITE).expect("default suite is known"))
}

/// `template build IMAGE [name=T] [builder=B] [machine=VM]`: root on the
/// host only. With builder=installer, `machine` is the registered machine
/// whose network, MAC, volume, memory, vcpus and boot route the build
/// install uses (its volume is overwritten).
pub fn build(
    ctx: &Ctx,
    image_name: &ImageName,
    name: Option<&TemplateName>,
    kind: BuilderKind,
    machine: Option<&VmName>,
) -> Result<Outcome> {
    ctx.require_local_admin()?;
    let config = ctx.config;
    let img = image::load(&config.images_dir(), image_name)?;
    let name = match name {
        Some(n) => n.clone(),
        None => TemplateName::parse(image_name.as_str()).expect("an image name is a template name"),
    };
    let build_machine = match (kind, machine) {
        (BuilderKind::Installer, Some(vm)) => Some(ctx.registry().get(vm)?),
        (BuilderKind::Installer, None) => return Err(Error::invalid("builder=installer needs machine=VM")),
        (BuilderKind::Mmdebstrap, _) => None,
    };
    let suite = suite_of(&img);
    let mirror = config.mirror.url();
    let started = std::time::Instant::now();
    let steps = crate::steps::Steps::stderr();
    let mmdebstrap;
    let installer;
    let builder: &dyn Builder = match &build_machine {
        None => {
            mmdebstrap = Mmdebstrap { program: config.mmdebstrap.path(), suite: &suite, mirror: &mirror, timeout: config.timeouts.template() };
            &mmdebstrap
        }
        Some(m) => {
            installer = Installer::claim(config, m, &img, &name)?;
            &installer
        }
    };
    let m = template::build(
        &config.templates_dir(),
        &BuildRequest {
            name: &name,
            image: image_name,
            suite: suite.clone(),
            config,
        },
        builder,
        &steps,
    )
    .map_err(Error::from)?;
    // Ganeti offers the new template as a variant of our OS definition.
    let variants = crate::ganeti::variants::refresh(config).map_err(Error::from)?;
    let secs = started.elapsed().as_secs_f64();
    Ok(Outcome {
        human: format!(
            "{}: built by {} from {} ({}, kernel {}, {} packages) in {secs:.0} s\n",
            m.name,
            m.builder,
            m.mirror,
            m.suite.as_str(),
            m.kernel_version,
            m.packages.len()
        ),
        json: obj([
            ("name", Value::from(m.name.as_str())),
            ("image", Value::from(m.image.as_str())),
            ("suite", Value::from(m.suite.as_str())),
            ("builder", Value::from(m.builder.as_str())),
            ("kernel_version", Value::from(m.kernel_version.as_str())),
            ("packages", Value::from(m.packages.len())),
            ("sha256", Value::from(m.root.sha256.as_str())),
            ("build_s", Value::from(secs)),
            ("ganeti_variants", Value::from(variants)),
        ]),
    })
}
