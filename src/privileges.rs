//! Giving up privilege for good, for processes of ours that keep uid 0
//! only to own root's files: the qemu supervisor, and tools run on what a
//! guest wrote (`exec::run_confined`). Async-signal-safe (system calls
//! only), so it may run between fork and exec.

/// Drops every capability, from the bounding set too, and sets
/// no-new-privileges: no exec can bring one back. Failures leave more
/// privilege, never memory unsafety; callers that must know check
/// `/proc/self/status`.
pub fn drop_all_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    drop_bounding_set();
    // SAFETY: capset with valid arguments.
    unsafe {
        let mut h = Header { version: 0x2008_0522, pid: 0 };
        let d = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
        libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr());
    }
}

/// Sets no-new-privileges and empties the bounding set, keeping the
/// capabilities the process has now (a caller that must still change its
/// uid does that next, then calls `drop_all_capabilities`).
pub fn drop_bounding_set() {
    // SAFETY: prctl with valid arguments.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
    }
}

/// Moves the calling process into namespaces of its own: no network, no
/// IPC with anyone, mounts that propagate nowhere. Needs CAP_SYS_ADMIN
/// (call it before `drop_all_capabilities`).
pub fn isolate() -> std::io::Result<()> {
    // SAFETY: unshare and mount with valid, NUL-terminated arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(c"none".as_ptr(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
