//! Names of machines, hosts, DNS domains, images, templates and Kerberos
//! principals: single tokens with a strict character set (the DNS ones share
//! the label rule), kept apart from paths and addresses.

use super::Rule;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

string_type!(
    /// A machine's name: a lowercase DNS label that starts with a letter
    /// (so `xl` can never mistake it for a numeric domain id). It names
    /// files, so it can never be `.`, `..` or hold a `/`.
    VmName,
    |s| {
        if is_label(s) && s.as_bytes()[0].is_ascii_lowercase() {
            Ok(())
        } else {
            Err(Rule("must be 1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"))
        }
    }
);

string_type!(
    /// A guest's host name (one DNS label, RFC 1123).
    Hostname,
    |s| {
        if is_label(s) {
            Ok(())
        } else {
            Err(Rule("must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"))
        }
    }
);

string_type!(
    /// A DNS domain: dot-separated labels, no trailing dot.
    DomainName,
    |s| {
        if !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label) {
            Ok(())
        } else {
            Err(Rule("must be DNS labels (a-z, 0-9, '-') joined by dots, at most 253 characters"))
        }
    }
);

string_type!(
    /// The name of an imported installer image; it names a directory.
    ImageName,
    |s| {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
            && !s.contains("..");
        if ok {
            Ok(())
        } else {
            Err(Rule("must be 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit, without '..'"))
        }
    }
);

string_type!(
    /// A golden template's name; it names a directory (same rule as an image name).
    TemplateName,
    |s| ImageName::parse(s).map(|_| ())
);

string_type!(
    /// A Kerberos principal, `name[/instance]@REALM`.
    Principal,
    |s| {
        let comp = |c: &str| {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        let ok = s.len() <= 256
            && match s.split_once('@') {
                Some((name, realm)) => {
                    comp(realm)
                        && !realm.contains('@')
                        && match name.split_once('/') {
                            Some((primary, instance)) => comp(primary) && comp(instance),
                            None => comp(name),
                        }
                }
                None => false,
            };
        if ok {
            Ok(())
        } else {
            Err(Rule("must be name[/instance]@REALM, each part of letters, digits, '.', '_' and '-'"))
        }
    }
);

string_type!(
    /// A kernel's version, as a template's `/boot/vmlinuz-VERSION` names
    /// it. The guest chose that file name, and `templates` prints it on
    /// every caller's terminal: no escape, no control character, no space.
    KernelVersion,
    |s| {
        if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".+~_-".contains(&b)) {
            Ok(())
        } else {
            Err(Rule("must be 1-64 characters of letters, digits and '.', '+', '~', '_', '-'"))
        }
    }
);
