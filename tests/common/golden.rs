//! The golden template the tests clone: built once per run by the real
//! binary (mmdebstrap from the Debian mirror in the config), cached.

use super::*;
use guest_installer::template;
use std::time::Instant;

/// The template built once per run by the real binary from an imported
/// image; returns the directory holding `tpl/` (the template) and
/// `build.json` (the build's output).
pub fn template_fixture() -> PathBuf {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        cached(&format!("template-{}", template::build_key()), |out| {
            let env = Env::new();
            env.import("deb12", false);
            let started = Instant::now();
            let o = env.run(As::Root, &["template", "build", "deb12", "name=tpl", "--json"], b"");
            assert_eq!(o.code, 0, "template build failed: {o:?}");
            o.json();
            eprintln!("BENCH template build (mmdebstrap + seal + mke2fs): {:.1} s", started.elapsed().as_secs_f64());
            // Its progress on stderr, stdout one document (checked here, where
            // the one build of a run happens).
            assert_eq!(o.stdout.lines().count(), 1, "{o:?}");
            o.json();
            super::steps::assert_steps(
                &o.stderr,
                &[
                    &format!("bootstrapping Debian bookworm from http://{}{} (mmdebstrap)", host_mirror().0, host_mirror().1),
                    "sealing the tree",
                    "making the 2 GiB whole-disk image (mke2fs into its partition, GRUB boot code)",
                    "computing the digests",
                    "publishing template tpl",
                ],
            );
            fs::create_dir_all(out).unwrap();
            sh(Command::new("cp").args(["-a", "--sparse=always"]).arg(env.state.join("templates/tpl")).arg(out.join("tpl")));
            fs::write(out.join("build.json"), o.stdout).unwrap();
        })
    })
    .clone()
}

/// Puts the cached template into the env's state dir as `tpl`.
pub fn add_template(env: &Env) {
    let t = env.state.join("templates");
    fs::create_dir_all(&t).unwrap();
    sh(Command::new("cp").args(["-a", "--sparse=always"]).arg(template_fixture().join("tpl")).arg(t.join("tpl")));
}

/// An XFS filesystem made with reflink support on a sparse image file,
/// loop-mounted at `at`; unmounted (and its loop device freed) on drop.
pub struct Xfs(pub PathBuf);
impl Xfs {
    pub fn mount(image: &std::path::Path, bytes: u64, at: &std::path::Path) -> Xfs {
        fs::File::create(image).unwrap().set_len(bytes).unwrap();
        sh(Command::new("mkfs.xfs").args(["-q", "-m", "reflink=1"]).arg(image));
        fs::create_dir_all(at).unwrap();
        sh(Command::new("mount").args(["-o", "loop"]).arg(image).arg(at));
        Xfs(at.to_path_buf())
    }
}
impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
