//! Renders a machine's preseed: the admin's preseed template with every
//! question we answer per VM taken out, then our answers appended. Each
//! answer is built from a typed value that cannot hold a newline or any
//! other control character, so no input can add a line or a directive.
//!
//! How root logs in (the owner's SSH keys, a locked root, our sshd drop-in:
//! see `rootlogin`) is applied by `preseed/late_command`, which debian-
//! installer runs at its end as `sh -c VALUE` (its `preseed_command`). We
//! own that question: our script runs first, inside the installed system
//! (`in-target`), and an admin's own late_command from the preseed
//! template runs after it, only if ours succeeded. Our script travels
//! base64-encoded, so the line holds only base64 and a fixed command.

use crate::config::Mirror;
use crate::guest::Guest;
use crate::secret::RootPassword;
use base64::Engine;
use std::path::{Path, PathBuf};

/// Per-VM answers: who the guest is, and where its installer gets
/// packages.
pub struct Values<'a> {
    pub guest: &'a Guest<'a>,
    pub mirror: &'a Mirror,
}

/// The admin's preseed template (the config's `preseed_template`), as
/// every request that renders a preseed reads it: root-owned, no symlink,
/// at most [`PreseedTemplate::MAX_BYTES`], UTF-8.
pub struct PreseedTemplate(String);

#[derive(Debug, thiserror::Error)]
pub enum PreseedTemplateError {
    #[error("cannot read the preseed template {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the preseed template {0} is not UTF-8")]
    NotUtf8(PathBuf),
}

impl PreseedTemplate {
    pub const MAX_BYTES: u64 = 1 << 20;

    pub fn read(path: &Path) -> Result<Self, PreseedTemplateError> {
        let bytes = crate::trust::read_io(path, Self::MAX_BYTES).map_err(|source| PreseedTemplateError::Read { path: path.into(), source })?;
        String::from_utf8(bytes).map(PreseedTemplate).map_err(|_| PreseedTemplateError::NotUtf8(path.into()))
    }

    /// This preseed template with `v`'s answers (see [`render`]).
    pub fn render(&self, v: &Values) -> String {
        render(&self.0, v)
    }
}

/// The questions we answer per VM; the preseed template's lines for them are
/// dropped so ours are the only answers.
pub const OWNED_QUESTIONS: &[&str] = &[
    "netcfg/get_hostname",
    "netcfg/hostname",
    "netcfg/get_domain",
    "netcfg/get_ipaddress",
    "netcfg/get_netmask",
    "netcfg/get_gateway",
    "netcfg/get_nameservers",
    "netcfg/confirm_static",
    "netcfg/disable_autoconfig",
    "netcfg/use_autoconfig",
    "netcfg/disable_dhcp",
    "netcfg/use_dhcp",
    "passwd/root-password",
    "passwd/root-password-again",
    "passwd/root-password-crypted",
    "mirror/country",
    "mirror/http/hostname",
    "mirror/http/directory",
    "preseed/late_command",
];

/// What user-setup gets for a root with no password. user-setup-ask asks
/// for a password when this is empty or exactly `!`, so it is neither;
/// user-setup-apply writes it as is (`usermod --password=`), and a `!`
/// first locks the account. Our late_command then sets exactly `!`.
pub const LOCKED_ROOT_ANSWER: &str = "!locked";

/// Where our late_command script is decoded to in the installed system
/// (it removes itself first thing).
const SCRIPT_IN_TARGET: &str = "/tmp/gi-root-login";

/// Whitespace as debconf's Perl `\s` sees it in a byte string.
pub fn is_debconf_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The question a logical preseed line answers, read as
/// debconf-set-selections reads it: continuation backslashes removed and
/// the lines joined with nothing between, comments skipped, then `owner
/// question type value`.
fn question(logical: &[&str]) -> Option<String> {
    let joined: String = logical.iter().map(|l| l.strip_suffix('\\').unwrap_or(l)).collect();
    let t = joined.trim_start_matches(is_debconf_space);
    if t.starts_with('#') {
        return None;
    }
    let mut words = t.split(is_debconf_space).filter(|w| !w.is_empty());
    words.next()?;
    words.next().map(str::to_owned)
}

/// A logical line's value as debian-installer's debconf-set-selections
/// reads it: each physical line without its leading whitespace, one that
/// ends in `\` joined to the next by a space (the `\` and the whitespace
/// before it dropped), then `owner question type value` with the value
/// after the whitespace that follows the type.
fn di_value(logical: &[&str]) -> Option<String> {
    let blank = |c: char| c.is_ascii_whitespace();
    let mut joined = String::new();
    for l in logical {
        let l = l.trim_start_matches(blank);
        let l = l.strip_suffix('\\').map(|l| l.trim_end_matches(blank)).unwrap_or(l);
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(l);
    }
    // d-i drops every carriage return; a shell variable holds no NUL.
    joined.retain(|c| c != '\r' && c != '\0');
    let mut rest = joined.as_str();
    for _ in 0..3 {
        let end = rest.find(blank)?;
        rest = rest[end..].trim_start_matches(blank);
    }
    // Written back as one line, a trailing `\` (a dangling continuation, or
    // one a carriage return hid) would join the line after it.
    Some(rest.trim_end_matches('\\').to_owned())
}

/// The preseed template's own `preseed/late_command` (the last one, as
/// debconf keeps the last answer), if it has a non-empty one.
pub fn template_late_command(preseed_template: &str) -> Option<String> {
    logical_lines(preseed_template)
        .iter()
        .rfind(|l| question(l).as_deref() == Some("preseed/late_command"))
        .and_then(|l| di_value(l))
        .filter(|v| !v.trim().is_empty())
}

/// Splits text into logical lines as debconf reads a preseed file: only
/// `\n` ends a line, and a line ending in `\` (a comment too) continues on
/// the next, so a dropped question takes its continuations along.
fn logical_lines(text: &str) -> Vec<Vec<&str>> {
    let mut physical: Vec<&str> = text.split('\n').collect();
    if text.ends_with('\n') || text.is_empty() {
        physical.pop();
    }
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in physical {
        cur.push(line);
        if !line.ends_with('\\') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Our answers for `v`, in the order they are appended. The last is the
/// late_command, if there is one: ours, then the preseed template's own
/// (`template_late`, see [`template_late_command`]).
pub fn answers(v: &Values, template_late: Option<&str>) -> Vec<String> {
    let root_answer = match v.guest.root.password() {
        RootPassword::Hash(h) => h.expose(),
        RootPassword::Locked => LOCKED_ROOT_ANSWER,
    };
    let mut out = crate::netcfg::answers(v.guest.network);
    out.extend([
        format!("d-i netcfg/get_hostname string {}", v.guest.hostname),
        format!("d-i netcfg/hostname string {}", v.guest.hostname),
        format!("d-i netcfg/get_domain string {}", v.guest.domain),
        "d-i mirror/country string manual".to_owned(),
        format!("d-i mirror/http/hostname string {}", v.mirror.host.as_str()),
        format!("d-i mirror/http/directory string {}", v.mirror.directory.as_str()),
        format!("d-i passwd/root-password-crypted password {root_answer}"),
    ]);
    // What netcfg could not configure, then how root logs in: one script.
    let scripts: Vec<String> = [crate::netcfg::target_script(v.guest.network), v.guest.root.target_script()].into_iter().flatten().collect();
    let ours = (!scripts.is_empty()).then(|| {
        let script = scripts.join("\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("rm -f {SCRIPT_IN_TARGET}\n{script}"));
        format!("in-target sh -c 'echo {b64} | base64 -d >{SCRIPT_IN_TARGET} && sh {SCRIPT_IN_TARGET}'")
    });
    // A failure of ours stops there (`exit 1`: d-i then shows "Failed to
    // run preseeded command" and waits, which `status` reports), so a
    // machine never comes up without the keys it was given.
    let late = match (ours, template_late) {
        (Some(o), Some(t)) => Some(format!("{o} || exit 1; {t}")),
        (Some(o), None) => Some(o),
        (None, Some(t)) => Some(t.to_owned()),
        (None, None) => None,
    };
    out.extend(late.map(|l| format!("d-i preseed/late_command string {l}")));
    out
}

/// Template + answers → preseed text.
pub fn render(preseed_template: &str, v: &Values) -> String {
    let mut out = String::with_capacity(preseed_template.len() + 1024);
    for logical in logical_lines(preseed_template) {
        if question(&logical).is_some_and(|q| OWNED_QUESTIONS.contains(&q.as_str())) {
            continue;
        }
        for l in logical {
            out.push_str(l);
            out.push('\n');
        }
    }
    // A preseed template ending in a continuation would swallow our first line.
    if out.ends_with("\\\n") {
        out.push('\n');
    }
    out.push_str("### guest-installer: per-VM answers (these override the preseed template)\n");
    let theirs = template_late_command(preseed_template);
    for a in answers(v, theirs.as_deref()) {
        // What is ours cannot hold a newline, backslash or quote; an admin's
        // late_command (trusted, from the preseed template) is theirs.
        let ours = match &theirs {
            Some(t) if a.starts_with("d-i preseed/late_command ") => a.strip_suffix(t.as_str()).unwrap_or(&a),
            _ => &a,
        };
        debug_assert!(!ours.contains(['\n', '\r', '\0', '\\', '"']), "{ours}");
        debug_assert!(!a.contains(['\n', '\r', '\0']));
        out.push_str(&a);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MirrorDir, MirrorHost};
    use crate::rootlogin::RootLogin;
    use crate::secret::CryptHash;
    use crate::sshkey::PublicKey;
    use crate::types::{DomainName, Hostname, Network};

    fn mirror() -> Mirror {
        Mirror { host: MirrorHost::parse("deb.debian.org").unwrap(), directory: MirrorDir::parse("/debian").unwrap() }
    }

    fn values() -> (Hostname, DomainName, Network, RootLogin, Mirror) {
        (
            Hostname::parse("web1").unwrap(),
            DomainName::parse("example.org").unwrap(),
            Network::new("192.0.2.10", "255.255.255.0", "192.0.2.1", &["192.0.2.53"]).unwrap(),
            RootLogin::console_only(CryptHash::hash_cleartext("pw").unwrap()),
            mirror(),
        )
    }

    fn render_with(preseed_template: &str) -> String {
        let (h, d, n, c, m) = values();
        render(preseed_template, &Values { guest: &Guest { hostname: &h, domain: &d, network: &n, root: &c }, mirror: &m })
    }

    fn render_for(preseed_template: &str, root: &RootLogin) -> String {
        let (h, d, n, _, m) = values();
        render(preseed_template, &Values { guest: &Guest { hostname: &h, domain: &d, network: &n, root }, mirror: &m })
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH+2i5AKkiRgfmm31jnpzTRX9C1c7OzuKqgSZ7WAoSvs bob@laptop (work)";

    /// Our late_command's value and the script its base64 carries.
    fn late_of(out: &str) -> Option<(String, String)> {
        let v = out.lines().find_map(|l| l.strip_prefix("d-i preseed/late_command string "))?.to_owned();
        let b64 = v.strip_prefix("in-target sh -c 'echo ")?.split(' ').next()?;
        let script = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
        Some((v, script))
    }

    #[test]
    fn root_login_travels_in_our_late_command_first_then_the_templates() {
        let key = PublicKey::parse_line(KEY).unwrap();
        let keys_locked = RootLogin::new(vec![key.clone()], crate::secret::RootPassword::Locked).unwrap();
        let out = render_for("d-i time/zone string UTC\n", &keys_locked);
        let (value, script) = late_of(&out).unwrap();
        assert!(!value.contains(['"', '\\', '\n']), "{value}");
        assert!(value.ends_with(" | base64 -d >/tmp/gi-root-login && sh /tmp/gi-root-login'"), "{value}");
        assert!(script.starts_with("rm -f /tmp/gi-root-login\n"), "{script}");
        assert!(script.contains(&format!("\n{KEY}\nGI_KEYS\n")), "{script}");
        assert!(script.contains("usermod -p '!' root") && !script.contains("PermitRootLogin"), "{script}");
        // user-setup gets a locked placeholder, not `!` (it would ask).
        assert!(out.contains("\nd-i passwd/root-password-crypted password !locked\n"), "{out}");

        // An admin's own late_command (continued over lines, as d-i
        // joins them) runs after ours, and only if ours succeeded.
        let t = "d-i preseed/late_command string old\nd-i time/zone string UTC\n d-i preseed/late_command string \\\n   in-target touch /etc/x ;\\\n echo \"done\"\n";
        let out = render_for(t, &keys_locked);
        assert_eq!(out.matches("preseed/late_command").count(), 1, "{out}");
        let (value, _) = late_of(&out).unwrap();
        assert!(value.ends_with("sh /tmp/gi-root-login' || exit 1; in-target touch /etc/x ; echo \"done\""), "{value}");
        assert!(!out.contains("string old"));

        // Nothing of ours to do (a template's build machine): theirs alone.
        let out = render_with(t);
        assert!(out.ends_with("d-i preseed/late_command string in-target touch /etc/x ; echo \"done\"\n"), "{out}");
        assert!(!render_with("d-i time/zone string UTC\n").contains("late_command"));

        // A password and no key: only the sshd drop-in.
        let pw_only = RootLogin::new(vec![], crate::secret::RootPassword::Hash(CryptHash::hash_cleartext("pw").unwrap())).unwrap();
        let (_, script) = late_of(&render_for("", &pw_only)).unwrap();
        assert!(script.contains("PermitRootLogin yes") && !script.contains("GI_KEYS") && !script.contains("usermod"), "{script}");
    }

    #[test]
    fn preseed_template_answers_for_owned_questions_are_replaced() {
        let t = "d-i netcfg/get_hostname string template\nd-i passwd/root-password password cleartext\n\
                 d-i passwd/root-password-again password cleartext\nd-i time/zone string UTC\n\
                 d-i mirror/http/hostname \\\n  string evil.example\n# d-i netcfg/get_hostname string commented\n";
        let out = render_with(t);
        assert!(!out.contains("string template"));
        assert!(!out.contains("cleartext"));
        assert!(!out.contains("evil.example"));
        assert!(out.contains("d-i time/zone string UTC\n"));
        assert!(out.contains("# d-i netcfg/get_hostname string commented\n"));
        assert_eq!(out.matches("netcfg/get_hostname string web1").count(), 1);
        assert!(out.contains("d-i netcfg/get_ipaddress string 192.0.2.10\n"));
        assert!(out.contains("d-i passwd/root-password-crypted password $6$"));
    }

    #[test]
    fn continuations_are_read_as_debconf_reads_them() {
        // debconf joins "d-i \" and "netcfg/..." into one directive.
        let out = render_with("d-i \\\nnetcfg/get_hostname string sneaky\n# note \\\nd-i time/zone string UTC\nd-i x/y string z \\");
        assert!(!out.contains("sneaky"), "{out}");
        // A comment's continuation is part of the comment: kept as is.
        assert!(out.contains("# note \\\nd-i time/zone string UTC\n"));
        // The dangling continuation at the end is closed before our lines.
        assert!(out.contains("d-i x/y string z \\\n\n### guest-installer"), "{out}");
    }

    /// A late_command of the template's that ends in a backslash once read
    /// (a dangling continuation, one behind a carriage return) cannot make
    /// our line swallow the next.
    #[test]
    fn the_templates_late_command_never_ends_our_line_in_a_backslash() {
        let key = PublicKey::parse_line(KEY).unwrap();
        let root = RootLogin::new(vec![key], crate::secret::RootPassword::Locked).unwrap();
        for t in ["d-i preseed/late_command string touch /x \\", "d-i preseed/late_command string touch /x\\\r\n", "d-i preseed/late_command string \\\\\r\n"] {
            let out = render_for(t, &root);
            let line = out.lines().find(|l| l.starts_with("d-i preseed/late_command ")).unwrap();
            assert!(!line.ends_with('\\') && !line.contains('\r'), "{t:?}: {line}");
            assert_eq!(out.lines().last(), Some(line), "{out}");
        }
    }

    #[test]
    fn rendering_adds_exactly_our_lines() {
        let t = "d-i time/zone string UTC\n";
        let out = render_with(t);
        let (h, d, n, c, m) = values();
        let ours = answers(&Values { guest: &Guest { hostname: &h, domain: &d, network: &n, root: &c }, mirror: &m }, None);
        assert_eq!(out.lines().count(), 1 + 1 + ours.len());
    }

    /// Every hostile string is refused by the types that feed the preseed,
    /// so it can never reach `render`.
    #[test]
    fn hostile_values_cannot_be_built() {
        let hostile = [
            "web1\nd-i preseed/late_command string rm -rf /",
            "web1\rd-i x",
            "a\0b",
            "a\\",
            "a\"b",
            "a'b",
            "a b",
            "a\tb",
            "$(reboot)",
            "`id`",
            "web\u{7f}",
            "wéb",
            "",
            "-web",
            &"a".repeat(300),
        ];
        for h in hostile {
            assert!(Hostname::parse(h).is_err(), "{h:?}");
            assert!(DomainName::parse(h).is_err(), "{h:?}");
            assert!(crate::types::parse_ipv4(h).is_err(), "{h:?}");
            assert!(MirrorHost::parse(h).is_err() || !h.contains(|c: char| c.is_control() || c == ' '), "{h:?}");
            assert!(Network::new(h, "255.255.255.0", "192.0.2.1", &["192.0.2.53"]).is_err());
            assert!(Network::new("192.0.2.10", "255.255.255.0", "192.0.2.1", &[h]).is_err());
            if h.starts_with("$6$") || h.starts_with("$y$") {
                assert!(CryptHash::parse_hash(h).is_err());
            }
        }
    }
}
