//! The subcommand words: the list `parse` knows, the audit's name for a
//! request that did not parse, and the help text that documents them.

use std::ffi::OsString;

/// Every first word `parse` knows (a test checks the two agree).
pub(super) const SUBCOMMANDS: &[&str] = &[
    "help", "install", "status", "cancel", "settle", "start", "stop", "reboot", "list", "images", "templates", "machine",
    "image", "template", "key", "ganeti", "console-keys", "console-serve",
];

/// The action a request that could not be parsed asked for, for the
/// audit log: a subcommand we know (never the caller's own words), or
/// `unknown`.
pub fn action_word(args: &[OsString]) -> &'static str {
    let mut words = args.iter().filter(|a| *a != "--json").filter_map(|a| a.to_str());
    match (words.next(), words.next()) {
        (Some("machine"), Some("add")) => "machine-add",
        (Some("machine"), Some("remove")) => "machine-remove",
        (Some("machine"), Some("show")) => "machine-show",
        (Some("image"), Some("import")) => "image-import",
        (Some("template"), Some("build")) => "template-build",
        (Some("key"), Some("add")) => "key-add",
        (Some("key"), Some("list")) => "key-list",
        (Some("key"), Some("remove")) => "key-remove",
        (Some(w), _) => SUBCOMMANDS
            .iter()
            .copied()
            .find(|k| *k == w)
            .unwrap_or("unknown"),
        (None, _) => "unknown",
    }
}

pub const HELP: &str = "\
guest-installer: unattended Debian installs of Xen guests

usage (remote callers: remctl HOST guest SUBCOMMAND ...):
  install VM [hostname=H] [image=I | template=T] [keys=none] [--no-start]
                     install VM; the root password (or its $6$/$y$ crypt
                     hash) is read from standard input, one line; with
                     template=T, clone a golden template onto the VM's
                     volume (seconds, not the installer's minutes); with
                     neither, the machine's template, else its image.
                     Your registered SSH keys (see key add) go into root's
                     authorized_keys unless keys=none; with keys, an empty
                     password line means no root password
  status VM          state, image, times and the last console line
  cancel VM          stop an install that has not finished, remove its media
  start VM           run an installed machine from its own disk and kernel
  stop VM [--force]  shut it down cleanly; with --force, destroy it if it
                     has not stopped within the configured time
  reboot VM          ask it to reboot itself
  list               the machines you may manage
  images             installable images
  templates          golden templates (for install template=T)
  key add 'TYPE BASE64 [COMMENT]'
                     register an SSH public key (one argument: quote it);
                     install puts your keys into root's authorized_keys
  key list           your registered keys with their fingerprints
  key remove SHA256:FINGERPRINT
                     forget one (admins: principal=P with any key word)
  help               this text

admin:
  machine add VM owner=P... NETWORK mac=M size=SIZE [memory=MiB]
              [vcpus=N] [image=I] [template=T] [boot=hvm-iso|pv-initrd]
                     SIZE: e.g. 20G (M, G, T); the volume is made in the
                     host's pool. disk=PATH instead imports an existing
                     volume (local root only). NETWORK: ip=A netmask=M
                     gateway=G (IPv4), ip6=ADDR/LEN gateway6=G (IPv6), or
                     both, with nameserver=N... (1 to 3); or ip=dhcp alone
  machine remove VM [--purge-volume]
                     --purge-volume: remove the volume the pool made too
  machine show VM
  image import NAME ISO sha256=HEX      (local root only)
  settle                                (local root only; run every minute
                                        by the package's timer: records
                                        finished installs, removes media,
                                        expires --no-start media)
  template build IMAGE|suite=S [name=T] [builder=mmdebstrap|installer] [machine=VM]
                                        (local root only; builder=installer
                                        runs our preseeded install in the
                                        registered build machine VM)
  ganeti create|export|import|rename|verify parameters|variants
                                        (local root only: the Ganeti OS
                                        definition's scripts run these)
  console-keys USER SHA256:FP           (local root only: sshd's
                                        AuthorizedKeysCommand for the
                                        console door's account)
  console-serve                         (local root only: one console door
                                        session, started by systemd)

--json anywhere after the subcommand: one JSON document on stdout, for
success and failure.
exit: 0 ok, 1 failed, 2 invalid, 3 denied, 4 not found, 5 busy
";
