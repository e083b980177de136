//! A tap device on the host bridge for an unprivileged qemu. qemu's own
//! `-nic bridge` runs the setuid qemu-bridge-helper, which its sandbox
//! (`spawn=deny`) forbids, so we make the tap, plug it into the bridge and
//! hand qemu the open device. The kernel removes it when qemu, its last
//! holder, exits.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
const SIOCSIFHWADDR: libc::c_ulong = 0x8924;
const SIOCGIFINDEX: libc::c_ulong = 0x8933;
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// `struct ifreq`: a name and a 24-byte union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

impl IfReq {
    fn named(name: &[u8]) -> IfReq {
        let mut r = IfReq { name: [0; 16], data: [0; 24] };
        r.name[..name.len()].copy_from_slice(name);
        r
    }
}

fn ioctl(fd: &impl AsRawFd, req: libc::c_ulong, r: &mut IfReq, what: &str) -> io::Result<()> {
    // SAFETY: every request here reads or writes one struct ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), req as _, r as *mut IfReq) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// A new tap (`gi-tapN`), up and in `bridge`, with a MAC the bridge will
/// not take as its own (the guest's, first byte 0xfe, as libvirt does).
pub fn open(bridge: &str, guest_mac: [u8; 6]) -> io::Result<OwnedFd> {
    let tun = OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open("/dev/net/tun")?;
    let mut r = IfReq::named(b"gi-tap%d");
    r.data[..2].copy_from_slice(&(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR).to_ne_bytes());
    ioctl(&tun, TUNSETIFF, &mut r, "cannot create a tap device")?;
    let name = r.name;
    // SAFETY: a new datagram socket, for interface ioctls only.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, ours.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };

    let mut hw = IfReq { name, data: [0; 24] };
    hw.data[..2].copy_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
    hw.data[2..8].copy_from_slice(&guest_mac);
    hw.data[2] = 0xfe;
    ioctl(&sock, SIOCSIFHWADDR, &mut hw, "cannot set the tap's address")?;

    let mut up = IfReq { name, data: [0; 24] };
    ioctl(&sock, SIOCGIFFLAGS, &mut up, "cannot read the tap's flags")?;
    let flags = i16::from_ne_bytes([up.data[0], up.data[1]]) | libc::IFF_UP as i16;
    up.data[..2].copy_from_slice(&flags.to_ne_bytes());
    ioctl(&sock, SIOCSIFFLAGS, &mut up, "cannot bring the tap up")?;

    let mut idx = IfReq { name, data: [0; 24] };
    ioctl(&sock, SIOCGIFINDEX, &mut idx, "cannot find the tap's index")?;
    let mut add = IfReq::named(bridge.as_bytes());
    add.data[..4].copy_from_slice(&idx.data[..4]);
    ioctl(&sock, SIOCBRADDIF, &mut add, &format!("cannot add the tap to bridge {bridge}"))?;
    Ok(tun.into())
}
