//! Test harness: a temporary state dir and config, the real binary run as
//! remctld would run it, a real syslog socket for the audit records, and
//! real installer ISOs built from Debian's packages.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub mod ganeti_os;
pub mod golden;
pub mod guide;
pub mod netns;
pub mod package;
pub mod reply;
pub mod shared;
pub mod ssh;
pub mod steps;
#[allow(unused_imports)]
pub use golden::{add_template, template_fixture, Xfs};
#[allow(unused_imports)]
pub use shared::{host_mirror, qemu_by_hand, qemu_fd_file};

pub const ADMIN: &str = "alice/admin@EXAMPLE.ORG";
pub const OWNER: &str = "bob@EXAMPLE.ORG";
pub const COOWNER: &str = "carol@EXAMPLE.ORG";
pub const STRANGER: &str = "mallory@EXAMPLE.ORG";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_guest-installer"))
}

/// The root filesystem of a whole disk (a template's image, a clone's raw
/// volume) as e2fsprogs names it: the disk and the partition's offset
/// (`debugfs`, `dumpe2fs`, `tune2fs`, `e2fsck` take `DISK?offset=N`).
pub fn root_fs(disk: &Path) -> String {
    format!("{}?offset={}", disk.display(), guest_installer::template::disk::PARTITION_START)
}

/// Shared cache for expensive fixtures, across the test binaries of a run.
pub fn cache_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gi-fixtures");
    fs::create_dir_all(&d).unwrap();
    d
}

/// Builds `out` once per cache, under a file lock, via a temporary name.
pub fn cached(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let out = cache_dir().join(name);
    let lockf = fs::File::create(cache_dir().join(format!("{name}.lock"))).unwrap();
    let _l = nix::fcntl::Flock::lock(lockf, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).unwrap();
    if !out.exists() {
        let tmp = cache_dir().join(format!(".{name}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_file(&tmp);
        build(&tmp);
        fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// `program` run through `prefix` (e.g. `ip netns exec NS`), or alone.
pub fn prefixed(prefix: &[&str], program: &Path) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

pub fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A Debian-installer-like ISO (isolinux + the real d-i netboot kernel and
/// initrd), optionally with the PV installer under install.amd/xen/.
pub fn installer_iso(xen: bool) -> PathBuf {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static XEN: OnceLock<PathBuf> = OnceLock::new();
    let cell = if xen { &XEN } else { &PLAIN };
    cell.get_or_init(|| {
        let name = if xen { "installer-xen.iso" } else { "installer.iso" };
        cached(name, |out| {
            let tree = tempfile::tempdir().unwrap();
            let t = tree.path().join("cd");
            let mut c = Command::new(repo().join("tests/support/iso/make-installer-tree"));
            c.arg(&t);
            if xen {
                c.arg("--xen");
            }
            sh(&mut c);
            sh(Command::new(repo().join("tests/support/iso/make-installer-iso")).arg(&t).arg(out));
        })
    })
    .clone()
}

/// A Debian 13 install CD like `installer_iso`'s, with Debian 13's own
/// netboot installer (fetched once per run from the mirror of the host's
/// apt sources, checked from the archive's signature down).
pub fn installer_iso_13() -> PathBuf {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    ISO.get_or_init(|| {
        let di = cached("di-netboot-13", |out| {
            sh(Command::new(repo().join("tests/support/iso/fetch-di-netboot")).args(["trixie", "13"]).arg(out));
        });
        cached("installer-13.iso", |out| {
            let tree = tempfile::tempdir().unwrap();
            let t = tree.path().join("cd");
            sh(Command::new(repo().join("tests/support/iso/make-installer-tree"))
                .arg(&t)
                .arg("--kernel")
                .arg(di.join("linux"))
                .arg("--initrd")
                .arg(di.join("initrd.gz"))
                .args(["--disk-info", "Debian GNU/Linux 13.2.0 \"Trixie\" - Official amd64 NETINST with firmware 20251115-11:19"]));
            sh(Command::new(repo().join("tests/support/iso/make-installer-iso")).arg(&t).arg(out));
        })
    })
    .clone()
}

/// Writes an executable (a test's stand-in or wrapper). The file is made
/// by a child process from a plain copy: no thread of the test binary ever
/// holds a writable descriptor on the executable, which would make its
/// exec fail with ETXTBSY if another thread forked at that moment.
pub fn write_executable(path: &Path, text: &str) {
    let src = path.with_extension("src");
    fs::write(&src, text).unwrap();
    sh(Command::new("install").arg("-m").arg("0755").arg(&src).arg(path));
}

pub fn sha256(path: &Path) -> String {
    guest_installer::image::sha256_file(path).unwrap().0
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The subcommand word (`status`, `machine-add`, ...) of the request,
    /// when the program run was ours: its `--json` reply is checked
    /// against that subcommand's shape in doc/reply.schema.json.
    pub action: Option<&'static str>,
}

impl Out {
    /// A finished program's exit status and output (not known to be ours
    /// until `of_request` says so).
    pub fn from_output(o: std::process::Output) -> Out {
        Out {
            code: o.status.code().unwrap_or_else(|| panic!("killed by a signal: {o:?}")),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            action: None,
        }
    }

    /// Records that this is our program's answer to `args` (its argv
    /// without the program name).
    pub fn of_request(mut self, args: &[&str]) -> Self {
        self.action = Some(reply::action(args));
        self
    }

    /// The one JSON document on stdout, checked against the documented
    /// reply of its subcommand (or, of a program not known to be ours,
    /// against every documented reply): a reply that does not match
    /// fails the test.
    pub fn json(&self) -> serde_json::Value {
        let doc = serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {self:?}"));
        reply::check(self.action, self.code, &doc);
        doc
    }
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

/// Who runs the binary.
#[derive(Clone, Copy, Debug)]
pub enum As<'a> {
    /// remctld with this REMOTE_USER.
    Remote(&'a str),
    /// root on the host, no REMOTE_USER.
    Root,
    /// a local non-root user (uid 65534), no REMOTE_USER.
    Nobody,
}

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
    pub xl: PathBuf,
    /// Audit records, drained from the socket by a thread so that the
    /// program never waits on a full syslog queue.
    audit: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Env {
    pub fn new() -> Env {
        Self::with_config_extra("")
    }

    /// `extra` is inserted at the top level of config.toml.
    pub fn with_config_extra(extra: &str) -> Env {
        let tmp = tempfile::Builder::new().prefix("gi-test-").tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = tmp.path().to_path_buf();
        let state = root.join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
        let preseed = root.join("preseed.cfg");
        fs::copy(repo().join("etc/preseed.cfg"), &preseed).unwrap();
        // Only root may be able to change what the program trusts,
        // whatever the checkout's modes and the umask.
        fs::set_permissions(&preseed, fs::Permissions::from_mode(0o644)).unwrap();
        let xl_dir = root.join("xl");
        let xl = PathBuf::from(
            sh(Command::new(repo().join("tests/support/xl/install-standin"))
                .arg(&xl_dir)
                .env("XL_SUPPORT_BUILD_DIR", PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xl-support")))
            .trim(),
        );
        let console = root.join("console");
        fs::create_dir(&console).unwrap();
        let sock = root.join("syslog.sock");
        let syslog = UnixDatagram::bind(&sock).unwrap();
        syslog.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
        let audit = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::downgrade(&audit);
        // Runs until the Env (the only strong owner of the records) is gone.
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let got = syslog.recv(&mut buf);
                let Some(sink) = sink.upgrade() else { return };
                if let Ok(n) = got {
                    sink.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
        let config = root.join("config.toml");
        let (mirror_host, mirror_dir) = host_mirror();
        let volumes = format!("\n[volumes]\nkind = \"file\"\ndir = \"{}\"\nformat = \"raw\"\n", root.join("volumes").display());
        fs::write(
            &config,
            shared::xl_config(&shared::XlConfig {
                state: &state,
                preseed: &preseed,
                admin: ADMIN,
                mirror: (mirror_host, mirror_dir),
                xl: &xl,
                console: &console,
                sock: &sock,
                tool_s: 120,
                hypervisor_s: 10,
                extra,
                sections: &volumes,
            }),
        )
        .unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        Env { tmp, state, config, xl, audit }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Replaces the config's `[volumes]` section (the volume pool; by
    /// default raw files in `volumes/` beside the state dir) with `section`
    /// (its lines without the header; empty: no pool).
    pub fn set_volumes(&self, section: &str) {
        let text = fs::read_to_string(&self.config).unwrap();
        let at = text.find("\n[volumes]\n").expect("a [volumes] section");
        let rest = &text[at + 1..];
        let end = rest[1..].find("\n[").map(|i| at + 1 + i + 2).unwrap_or(text.len());
        let new = if section.is_empty() { String::new() } else { format!("[volumes]\n{section}\n") };
        fs::write(&self.config, format!("{}\n{new}{}", &text[..at], &text[end..])).unwrap();
    }

    /// The pool's volume directory (default config).
    pub fn pool_dir(&self) -> PathBuf {
        self.root().join("volumes")
    }

    pub fn run(&self, who: As, args: &[&str], stdin: &[u8]) -> Out {
        self.run_prefixed(&[], who, args, stdin)
    }

    /// `run`, through `prefix` (e.g. `ip netns exec NS`: see netns.rs).
    pub fn run_prefixed(&self, prefix: &[&str], who: As, args: &[&str], stdin: &[u8]) -> Out {
        let mut c = prefixed(prefix, &bin());
        c.args(args).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("GUEST_INSTALLER_CONFIG", &self.config);
        match who {
            As::Remote(p) => {
                c.env("REMOTE_USER", p);
            }
            As::Root => {}
            As::Nobody => {
                c.uid(65534).gid(65534);
            }
        }
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut si = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = si.write_all(&data);
        });
        let o = child.wait_with_output().unwrap();
        let _ = writer.join();
        let out = Out::from_output(o).of_request(args);
        // Every --json reply is checked, also one the test does not read.
        if args.contains(&"--json") {
            out.json();
        }
        out
    }

    /// Audit records received so far.
    /// Audit records received since the last call. A record is sent before
    /// the program exits; give the drain thread a moment to store it.
    pub fn audit(&self) -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::mem::take(&mut *self.audit.lock().unwrap())
    }

    /// A volume for a machine: a sparse file.
    pub fn volume(&self, vm: &str) -> PathBuf {
        let p = self.root().join(format!("{vm}.img"));
        let f = fs::File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        p
    }

    /// A sparse raw volume of `bytes` bytes.
    pub fn volume_sized(&self, vm: &str, bytes: u64) -> PathBuf {
        let p = self.root().join(format!("{vm}-big.img"));
        fs::File::create(&p).unwrap().set_len(bytes).unwrap();
        p
    }

    /// A qcow2 volume (`qemu-img create`), 4 GiB virtual.
    pub fn volume_qcow2(&self, vm: &str) -> PathBuf {
        let p = self.root().join(format!("{vm}.qcow2"));
        sh(Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&p).arg("4G"));
        p
    }

    /// Imports, as image `fake`, an install CD whose installer is the
    /// busybox fake installer (tests/support/iso/make-busybox-installer,
    /// given `args`).
    pub fn import_busybox_installer(&self, args: &[&std::ffi::OsStr]) {
        let work = self.root().join("fake");
        let (bb, tree, iso) = (work.join("bb"), work.join("tree"), work.join("fake.iso"));
        let support = repo().join("tests/support/iso");
        sh(Command::new(support.join("make-busybox-installer")).arg(&bb).args(args));
        sh(Command::new(support.join("make-installer-tree"))
            .arg(&tree)
            .arg("--kernel")
            .arg(bb.join("vmlinuz"))
            .arg("--initrd")
            .arg(bb.join("initrd.gz")));
        sh(Command::new(support.join("make-installer-iso")).arg(&tree).arg(&iso));
        let sum = format!("sha256={}", sha256(&iso));
        self.run(As::Root, &["image", "import", "fake", iso.to_str().unwrap(), &sum], b"").ok();
    }

    pub fn import(&self, name: &str, xen: bool) {
        self.import_iso(name, &installer_iso(xen));
    }

    pub fn import_iso(&self, name: &str, iso: &Path) {
        let sum = format!("sha256={}", sha256(&iso));
        self.run(As::Root, &["image", "import", name, iso.to_str().unwrap(), &sum], b"").ok();
    }

    /// Registers `vm` owned by OWNER and COOWNER with a fresh volume.
    pub fn machine(&self, vm: &str, n: u8, image: Option<&str>) -> PathBuf {
        self.machine_with(vm, n, image, &[])
    }

    /// Everything under the state dir: path → (type, mode, uid, contents).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u32, Vec<u8>)> {
        snapshot(&self.state)
    }

    /// Sets the stand-in xl's behaviour: ok, fail, hang, missing-domain.
    pub fn xl_mode(&self, mode: &str) {
        fs::write(self.xl.parent().unwrap().join("mode"), mode).unwrap();
    }

    /// The stand-in's view: is the guest running?
    pub fn xl_running(&self, vm: &str) -> bool {
        self.xl.parent().unwrap().join("domains").join(vm).exists()
    }

    /// Plays the installer rebooting at the end: the domain goes away.
    pub fn xl_guest_finishes(&self, vm: &str) {
        fs::remove_file(self.xl.parent().unwrap().join("domains").join(vm)).unwrap();
    }

    pub fn vm_file(&self, vm: &str, f: &str) -> PathBuf {
        self.state.join("vms").join(vm).join(f)
    }
}

/// Starts the binary, kills it with SIGKILL after `delay`, and reaps it.
pub fn kill_after(env: &Env, args: &[&str], stdin: &[u8], delay: std::time::Duration) {
    let mut c = Command::new(bin());
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("GUEST_INSTALLER_CONFIG", &env.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = c.spawn().unwrap();
    let _ = std::io::Write::write_all(child.stdin.as_mut().unwrap(), stdin);
    drop(child.stdin.take());
    std::thread::sleep(delay);
    // The whole group: xorriso too, if it was running.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// A small filesystem mounted for the test, unmounted on drop.
pub struct Tmpfs(std::path::PathBuf);
impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        sh(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"]).arg(at));
        Tmpfs(at.to_path_buf())
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Something mounted (or bound) for a test, undone (lazily) on drop.
/// (Quietly: what the test checks may have unmounted it already.)
pub struct Mounted(pub PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).stderr(Stdio::null()).status();
    }
}

/// Panics naming the paths whose type, mode, owner or contents differ
/// (never printing contents: a template image is GiB).
pub fn assert_same_tree(before: &BTreeMap<PathBuf, (u32, u32, Vec<u8>)>, after: &BTreeMap<PathBuf, (u32, u32, Vec<u8>)>, what: &str) {
    let mut diff: Vec<&PathBuf> = before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
    diff.dedup();
    assert!(diff.is_empty(), "{what}: {diff:?}");
}

pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let content = if m.is_file() {
            fs::read(&p).unwrap()
        } else if m.file_type().is_symlink() {
            fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
        } else {
            Vec::new()
        };
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(p, (m.mode(), m.uid(), content));
    }
    out
}

/// The plain ISO a CD image reads as: a qcow2 overlay (the per-VM media)
/// is flattened into `dir` with qemu-img.
pub fn flat_iso(iso: &Path, dir: &Path) -> PathBuf {
    if iso.extension().is_some_and(|e| e == "qcow2") {
        let flat = dir.join("flat.iso");
        sh(Command::new("qemu-img").args(["convert", "-f", "qcow2", "-O", "raw"]).arg(iso).arg(&flat));
        flat
    } else {
        iso.to_path_buf()
    }
}

/// Checks an xl domain config with Xen's own parser; returns libxl's JSON.
pub fn check_xl_config(cfg: &Path) -> String {
    let o = Command::new(repo().join("tests/support/xl/check-xl-config"))
        .arg(cfg)
        .env("XL_SUPPORT_BUILD_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("xl-support"))
        .output()
        .unwrap();
    assert!(o.status.success(), "Xen's parser refused {}: {}", cfg.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Reads one file out of a CD image with xorriso; a qcow2 overlay (the
/// per-VM media) is first flattened with qemu-img.
pub fn iso_file(iso: &Path, path: &str) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("f");
    let flat = flat_iso(iso, d.path());
    let iso = flat.as_path();
    sh(Command::new("xorriso").args(["-osirrox", "on", "-indev"]).arg(iso).args(["-extract", path]).arg(&out));
    fs::read(&out).unwrap()
}

/// A throwaway Kerberos realm and remctld (tests/remctl.rs, tests/package.rs).
pub mod realm;

// ---- qemu driver helpers (tests/boot.rs) ----

impl Env {
    /// Rewrites the config's `[hypervisor]` section for the qemu driver with
    /// restricted user-mode networking (no way out of the guest).
    pub fn use_qemu(&self) {
        let text = fs::read_to_string(&self.config).unwrap();
        let mut out = String::with_capacity(text.len() + 64);
        let mut in_hv = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                in_hv = t == "[hypervisor]";
                out.push_str(line);
                out.push('\n');
                if in_hv {
                    out.push_str("driver = \"qemu\"\nqemu_net = \"user\"\n");
                }
                continue;
            }
            let key = t.split('=').next().unwrap_or("").trim();
            if in_hv && ["driver", "qemu_net"].contains(&key) {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        assert!(out.contains("[hypervisor]\ndriver = \"qemu\"\n"), "no [hypervisor] section in\n{text}");
        fs::write(&self.config, out).unwrap();
    }

    /// The qemu driver with its guests' NICs as taps on `bridge` (one a
    /// test's network namespace holds).
    pub fn use_qemu_on_bridge(&self, bridge: &str) {
        self.use_qemu();
        let text = fs::read_to_string(&self.config).unwrap().replace("qemu_net = \"user\"", "qemu_net = \"bridge\"");
        fs::write(&self.config, text.replace("bridge = \"xenbr0\"", &format!("bridge = \"{bridge}\""))).unwrap();
    }

    /// Like `machine`, with `key=value` words that replace or add to the
    /// defaults (e.g. `boot=pv-initrd`, `memory=1024`; `key=` removes one). The volume is one
    /// the test made (a 64 MiB sparse file unless `disk=` says otherwise),
    /// imported by root; with `size=`, an admin registers the machine
    /// remotely and the pool makes its volume.
    pub fn machine_with(&self, vm: &str, n: u8, image: Option<&str>, extra: &[&str]) -> PathBuf {
        let disk = self.volume(vm);
        let mut args = vec![
            format!("owner={OWNER}"),
            format!("owner={COOWNER}"),
            format!("ip=192.0.2.{}", 10 + n),
            "netmask=255.255.255.0".into(),
            "gateway=192.0.2.1".into(),
            "nameserver=192.0.2.53".into(),
            format!("mac=00:16:3e:00:00:{:02x}", n),
            format!("disk={}", disk.display()),
            "memory=512".into(),
        ];
        if let Some(i) = image {
            args.push(format!("image={i}"));
        }
        for e in extra {
            let (key, value) = e.split_once('=').unwrap_or((e, e));
            if key != "owner" {
                args.retain(|a| a.split('=').next() != Some(key));
            }
            // `key=` alone only removes the default (e.g. `netmask=` for a
            // machine with IPv6 only).
            if !value.is_empty() {
                args.push((*e).to_owned());
            }
        }
        let pooled = extra.iter().any(|e| e.starts_with("size="));
        if pooled {
            args.retain(|a| !a.starts_with("disk="));
            let _ = fs::remove_file(&disk);
        }
        let mut a: Vec<&str> = vec!["machine", "add", vm, "--json"];
        a.extend(args.iter().map(String::as_str));
        let who = if pooled { As::Remote(ADMIN) } else { As::Root };
        let out = self.run(who, &a, b"");
        PathBuf::from(out.ok().json()["disk"].as_str().unwrap())
    }
}

/// The VM's serial console log as text (qemu driver).
pub fn console(env: &Env, vm: &str) -> String {
    String::from_utf8_lossy(&fs::read(env.vm_file(vm, "console.log")).unwrap_or_default()).into_owned()
}

/// The last `n` console lines without escape sequences and line-drawing
/// noise, for failure messages.
pub fn readable_tail(text: &str, n: usize) -> String {
    let lines: Vec<String> = text
        .split(['\n', '\r'])
        .map(guest_installer::console::clean_line)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A qemu guest of the qemu driver, stopped whatever happens to the test:
/// `cancel`, then SIGKILL if our qemu is still there. Never panics (it
/// runs while unwinding).
pub struct Guest {
    /// The program and the config the guest's requests run with.
    program: PathBuf,
    config: PathBuf,
    /// The machine's directory under the state dir (`vms/VM`).
    vm_dir: PathBuf,
    pub vm: String,
    /// The last pid seen in the pidfile: `cancel` removes the file, and a
    /// qemu that outlived it must still be found.
    seen: std::cell::Cell<Option<i32>>,
}

impl Guest {
    pub fn new(env: &Env, vm: &str) -> Self {
        Self::of(&bin(), &env.config, &env.state, vm)
    }

    /// A guest of `program` run with `config` whose state dir is `state`
    /// (e.g. the installed package's).
    pub fn of(program: &Path, config: &Path, state: &Path, vm: &str) -> Self {
        Guest {
            program: program.to_path_buf(),
            config: config.to_path_buf(),
            vm_dir: state.join("vms").join(vm),
            vm: vm.to_owned(),
            seen: std::cell::Cell::new(None),
        }
    }

    /// Our qemu's pid, if it runs (checked against its command line).
    pub fn pid(&self) -> Option<i32> {
        if let Some(p) = fs::read_to_string(self.vm_dir.join("qemu.pid")).ok().and_then(|s| s.trim().parse().ok()) {
            self.seen.set(Some(p));
        }
        let pid = self.seen.get()?;
        let marker = format!("guest={0},process=gi-{0}", self.vm);
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        cmd.split(|b| *b == 0).any(|a| a == marker.as_bytes()).then_some(pid)
    }

    pub fn qemu_alive(&self) -> bool {
        self.pid().is_some()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = Command::new(&self.program)
            .args(["cancel", &self.vm])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("GUEST_INSTALLER_CONFIG", &self.config)
            .stdin(Stdio::null())
            .output();
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while self.pid().is_some() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}
