//! An empty world for a tool that parses what a guest wrote (`debugfs` on
//! a Ganeti instance's disk): libext2fs has had memory-safety bugs with
//! crafted images, so a tool that a crafted image takes over must find
//! nothing to reach. The tool runs in namespaces of its own (no network,
//! no IPC), its root is a small read-only tmpfs holding only `/usr`
//! (read-only, for the tool and its libraries), the root's links into it,
//! the one device it is given and the bytes it is handed; no `/proc`,
//! `/dev`, `/etc` or `/var`. It runs as `nobody` with the device's group
//! where the device's mode lets that group write it (a block device of
//! group `disk`), else as root without any capability; either way with no
//! way to gain one, and with a seccomp filter that refuses the system
//! calls a tool of this kind never needs (sockets, mounts, namespaces,
//! tracing, modules, keyrings, BPF...).
//!
//! Everything is prepared before the fork: [`Jail::enter`] runs between
//! fork and exec and makes only system calls.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Debian's `nobody`: owns nothing on the host.
const NOBODY: u32 = 65534;
/// Where the new root is assembled, in the tool's own mount namespace
/// (what is mounted there is seen by nobody else).
const BUILD_AT: &str = "/tmp";
/// The directories the tool's program and libraries come from.
const SYSTEM_DIR: &str = "/usr";
/// The root's entries that are links into /usr on a merged-/usr system
/// (bin, lib...) or directories of their own on an older one.
const ROOT_LINKS: [&str; 6] = ["bin", "sbin", "lib", "lib64", "lib32", "libx32"];
/// The dynamic linker's cache: without it the tool still starts (the
/// linker searches its default directories), only more slowly.
const LD_CACHE: &str = "/etc/ld.so.cache";

/// What a confined tool is given, each at `/NAME` in its root.
pub enum Given<'a> {
    /// A file or block device the tool may read and write.
    Device { host: &'a Path, name: &'static str },
    /// Bytes the tool reads, as a file of its own (mode 0400).
    Data { name: &'static str, bytes: &'a [u8] },
}

impl Given<'_> {
    /// The path the tool sees.
    pub fn inside(&self) -> String {
        match self {
            Given::Device { name, .. } | Given::Data { name, .. } => format!("/{name}"),
        }
    }
}

struct Bind {
    from: CString,
    to: CString,
    /// A file's device and inode as we saw it: the child opens `from`
    /// again in its own namespace (a mount can be bound only from there)
    /// and binds it only if it is still that file.
    file: Option<(u64, u64)>,
    writable: bool,
}

pub struct Jail {
    build_at: CString,
    tmpfs_options: CString,
    binds: Vec<Bind>,
    links: Vec<(CString, CString)>,
    data: Vec<(CString, Vec<u8>)>,
    user: Option<(u32, u32)>,
    filter: seccompiler::BpfProgram,
}

fn cstring(s: impl AsRef<[u8]>) -> io::Result<CString> {
    CString::new(s.as_ref()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The system calls a confined tool is refused (EPERM): none is needed to
/// read and write a filesystem image, each helps a tool that was taken
/// over to reach past its jail.
const REFUSED: &[libc::c_long] = &[
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_fanotify_init,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
    libc::SYS_capset,
];

fn filter() -> io::Result<seccompiler::BpfProgram> {
    let arch = std::env::consts::ARCH.try_into().map_err(|_| invalid(format!("no seccomp filter for {}", std::env::consts::ARCH)))?;
    let rules = REFUSED.iter().map(|&nr| (nr, vec![])).collect();
    let f = seccompiler::SeccompFilter::new(rules, seccompiler::SeccompAction::Allow, seccompiler::SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| invalid(format!("cannot make the seccomp filter: {e}")))?;
    f.try_into().map_err(|e| invalid(format!("cannot make the seccomp filter: {e}")))
}

/// At most this many binds (/usr, a few root directories on a system
/// without merged /usr, ld.so.cache, the device).
const MAX_BINDS: usize = 16;

/// Writes `/proc/self/fd/N` and a NUL into `buf`, without allocating.
fn proc_fd_path(fd: libc::c_int, buf: &mut [u8; 32]) {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (fd as u32, 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
}

impl Jail {
    /// Plans the jail for `program` (which must live under /usr, the only
    /// system directory the tool sees) and what it is given.
    pub fn prepare(program: &Path, given: &[Given]) -> io::Result<Jail> {
        let real = std::fs::canonicalize(program)?;
        if !real.starts_with(SYSTEM_DIR) {
            return Err(invalid(format!("{} is not under {SYSTEM_DIR}, so a confined run cannot see it", program.display())));
        }
        let at = |name: &str| cstring(format!("{BUILD_AT}/{name}"));
        let mut binds = vec![Bind { from: cstring(SYSTEM_DIR)?, to: at("usr")?, file: None, writable: false }];
        let mut links = Vec::new();
        for name in ROOT_LINKS {
            let host = Path::new("/").join(name);
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => links.push((cstring(std::fs::read_link(&host)?.as_os_str().as_bytes())?, at(name)?)),
                Ok(m) if m.is_dir() => binds.push(Bind { from: cstring(host.as_os_str().as_bytes())?, to: at(name)?, file: None, writable: false }),
                _ => {}
            }
        }
        if let Ok(m) = std::fs::metadata(LD_CACHE) {
            binds.push(Bind { from: cstring(LD_CACHE)?, to: at("etc/ld.so.cache")?, file: Some((m.dev(), m.ino())), writable: false });
        }
        let mut user = None;
        let mut data = Vec::new();
        let mut data_bytes = 0;
        for g in given {
            match g {
                Given::Device { host, name } => {
                    let f = std::fs::OpenOptions::new().read(true).write(true).open(host)?;
                    let m = f.metadata()?;
                    // Writable by its group, and that group is not root's:
                    // `nobody` in that group can do the tool's work.
                    let by_group = m.mode() & 0o060 == 0o060 && m.gid() != 0;
                    user = match (by_group, user) {
                        (true, None) => Some(Some((NOBODY, m.gid()))),
                        (true, Some(Some((_, g)))) if g == m.gid() => user,
                        _ => Some(None),
                    };
                    binds.push(Bind { from: cstring(host.as_os_str().as_bytes())?, to: at(name)?, file: Some((m.dev(), m.ino())), writable: true });
                }
                Given::Data { name, bytes } => {
                    data_bytes += bytes.len();
                    data.push((at(name)?, bytes.to_vec()));
                }
            }
        }
        if binds.len() > MAX_BINDS {
            return Err(invalid(format!("a confined run takes at most {MAX_BINDS} binds")));
        }
        Ok(Jail {
            build_at: cstring(BUILD_AT)?,
            tmpfs_options: cstring(format!("mode=0755,size={}", data_bytes + (1 << 20)))?,
            binds,
            links,
            data,
            user: user.flatten(),
            filter: filter()?,
        })
    }

    /// The uid and gid the tool runs as, if not root.
    pub fn user(&self) -> Option<(u32, u32)> {
        self.user
    }

    /// Builds the root and enters it, drops every privilege and applies
    /// the filter. Between fork and exec: system calls only.
    pub fn enter(&self) -> io::Result<()> {
        crate::privileges::isolate()?;
        let ok = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
        let none = std::ptr::null::<libc::c_char>();
        // SAFETY: system calls with valid, NUL-terminated arguments, made
        // in the child's own mount namespace.
        unsafe {
            // Files are opened before our tmpfs may cover them, and must
            // still be the ones we checked.
            let mut fds = [-1; MAX_BINDS];
            for (i, b) in self.binds.iter().enumerate() {
                let Some((dev, ino)) = b.file else { continue };
                let fd = libc::open(b.from.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut st: libc::stat = std::mem::zeroed();
                ok(libc::fstat(fd, &mut st))?;
                if st.st_dev != dev || st.st_ino != ino {
                    return Err(io::Error::from_raw_os_error(libc::ESTALE));
                }
                fds[i] = fd;
            }
            ok(libc::mount(c"tmpfs".as_ptr(), self.build_at.as_ptr(), c"tmpfs".as_ptr(), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, self.tmpfs_options.as_ptr().cast()))?;
            // ld.so.cache's directory.
            let etc = [self.build_at.as_bytes(), b"/etc\0"].concat();
            let _ = libc::mkdir(etc.as_ptr().cast(), 0o755);
            for (b, &fd) in self.binds.iter().zip(&fds) {
                let mut proc_fd = [0u8; 32];
                let from = if b.file.is_none() {
                    ok(libc::mkdir(b.to.as_ptr(), 0o755))?;
                    b.from.as_ptr()
                } else {
                    let at = libc::open(b.to.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC, 0o600);
                    if at < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    libc::close(at);
                    proc_fd_path(fd, &mut proc_fd);
                    proc_fd.as_ptr().cast()
                };
                ok(libc::mount(from, b.to.as_ptr(), none, libc::MS_BIND | libc::MS_REC, none.cast()))?;
                let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID;
                if !b.writable {
                    flags |= libc::MS_RDONLY | libc::MS_NODEV;
                }
                ok(libc::mount(none, b.to.as_ptr(), none, flags, none.cast()))?;
            }
            for (target, at) in &self.links {
                ok(libc::symlink(target.as_ptr(), at.as_ptr()))?;
            }
            for (at, bytes) in &self.data {
                let fd = libc::open(at.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC, 0o400);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut done = 0;
                while done < bytes.len() {
                    let n = libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done);
                    if n <= 0 {
                        let e = io::Error::last_os_error();
                        libc::close(fd);
                        return Err(e);
                    }
                    done += n as usize;
                }
                if let Some((uid, gid)) = self.user {
                    ok(libc::fchown(fd, uid, gid))?;
                }
                libc::close(fd);
            }
            // The old root goes away entirely: stacked under the new one by
            // pivot_root(".", "."), then detached.
            ok(libc::chdir(self.build_at.as_ptr()))?;
            ok(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as libc::c_int)?;
            ok(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
            ok(libc::chdir(c"/".as_ptr()))?;
            ok(libc::mount(none, c"/".as_ptr(), none, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, none.cast()))?;
        }
        // The bounding set needs CAP_SETPCAP, the user switch CAP_SETUID:
        // both before the capabilities themselves go.
        crate::privileges::drop_bounding_set();
        if let Some((uid, gid)) = self.user {
            // SAFETY: plain system calls.
            unsafe {
                ok(libc::setgroups(0, std::ptr::null()))?;
                ok(libc::setresgid(gid, gid, gid))?;
                ok(libc::setresuid(uid, uid, uid))?;
            }
        }
        crate::privileges::drop_all_capabilities();
        seccompiler::apply_filter(&self.filter).map_err(|e| match e {
            seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e,
            _ => io::Error::from_raw_os_error(libc::EINVAL),
        })?;
        Ok(())
    }
}
