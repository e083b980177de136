//! `templates` and `template build`.

use super::{obj, Ctx, Outcome};
use crate::error::{Error, Result};
use crate::image;
use crate::template::installer::Installer;
use crate::template::mmdebstrap::Mmdebstrap;
use crate::template::{self, BuildRequest, Builder, BuilderKind, Suite, TemplateName};
use crate::cli::TemplateFrom;
use crate::types::VmName;
use serde_json::Value;

pub fn list(ctx: &Ctx) -> Result<Outcome> {
    let mut human = String::new();
    let mut rows = Vec::new();
    for t in template::list(&ctx.config.templates_dir())? {
        let m = &t.manifest;
        human.push_str(&format!(
            "{:<24} from {} suite {} by {} kernel {} ({} packages)\n",
            m.name,
            m.built_from(),
            m.suite.as_str(),
            m.builder,
            m.kernel_version,
            m.packages.len()
        ));
        rows.push(Value::Object(obj([
            ("name", Value::from(m.name.as_str())),
            ("image", m.image.as_ref().map(|i| Value::from(i.as_str())).unwrap_or(Value::Null)),
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

/// `template build IMAGE|suite=S [name=T] [builder=B] [machine=VM]`: root
/// on the host only. With builder=installer, `machine` is the registered
/// machine whose network, MAC, volume, memory, vcpus and boot route the
/// build install uses (its volume is overwritten).
pub fn build(
    ctx: &Ctx,
    from: &TemplateFrom,
    name: Option<&TemplateName>,
    kind: BuilderKind,
    machine: Option<&VmName>,
) -> Result<Outcome> {
    ctx.require_local_admin()?;
    let config = ctx.config;
    let (image_name, img, suite) = match from {
        TemplateFrom::Image(i) => {
            let img = image::load(&config.images_dir(), i)?;
            let suite = suite_of(&img);
            (Some(i), Some(img), suite)
        }
        TemplateFrom::Suite(s) => (None, None, s.clone()),
    };
    let name = match name {
        Some(n) => n.clone(),
        None => TemplateName::parse(image_name.map_or(suite.as_str(), |i| i.as_str())).expect("image and suite names are template names"),
    };
    let build_machine = match (kind, machine, &img) {
        (BuilderKind::Installer, Some(vm), Some(img)) => Some((ctx.registry().get(vm)?, img)),
        (BuilderKind::Installer, None, _) => return Err(Error::invalid("builder=installer needs machine=VM")),
        (BuilderKind::Installer, _, None) => return Err(Error::invalid("builder=installer needs an image, not suite=")),
        (BuilderKind::Mmdebstrap, ..) => None,
    };
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
        Some((m, img)) => {
            installer = Installer::claim(config, m, img, &name)?;
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
            ("image", m.image.as_ref().map(|i| Value::from(i.as_str())).unwrap_or(Value::Null)),
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
