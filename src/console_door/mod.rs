//! The serial console over SSH: `ssh -t guest@HOST console VM`.
//!
//! Three processes, each with one job:
//!
//! - sshd asks `console-keys` ([`keys`], root, sshd's
//!   `AuthorizedKeysCommand`) whether a key may log in as the console
//!   account; for a registered key it answers with the key and a forced
//!   command naming the key's principal, `restrict,pty`.
//! - sshd runs that command through the account's login shell, the door
//!   ([`door`], the account's uid, no privilege): it takes `console VM`
//!   from the client, connects to `console-serve`'s socket and relays.
//! - `console-serve` ([`serve`], root, started per connection by systemd)
//!   believes the principal only because the connecting process runs as
//!   the console account (`SO_PEERCRED`), applies the same policy as every
//!   remctl request, holds the machine's console lock for the session,
//!   audits it, and relays between the door and the guest's console
//!   ([`crate::hypervisor::Hypervisor::attach_console`]) until the guest
//!   stops or the person detaches with `Ctrl-]`.
//!
//! [`protocol`] is the one line each way between door and server;
//! [`relay`] the byte pump both run; [`tty`] raw mode and ptys.

pub mod door;
pub mod keys;
pub mod protocol;
pub mod relay;
pub mod serve;
pub mod tty;
