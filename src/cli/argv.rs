//! The argument parser: argv limits, `--json`, the first word's dispatch,
//! and the `key=value` helpers every subcommand's parser shares.

use super::requests::{image, install, key, machine, stop, template};
use super::{usage, value, Command, UsageError};
use crate::types::VmName;
use std::ffi::OsString;

pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 1024;

/// `--json` is looked for before anything else so that even a usage error
/// is reported as JSON.
pub fn wants_json(args: &[OsString]) -> bool {
    args.iter().any(|a| a == "--json")
}

/// Parses argv without the program name.
pub fn parse(args: &[OsString]) -> Result<Command, UsageError> {
    if args.len() > MAX_ARGS {
        return Err(usage(format!("too many arguments (at most {MAX_ARGS})")));
    }
    let mut words: Vec<&str> = Vec::with_capacity(args.len());
    // An RSA public key line is longer than any other argument.
    let limit = if args.iter().find(|a| *a != "--json").is_some_and(|a| a == "key") { crate::sshkey::MAX_LINE } else { MAX_ARG_BYTES };
    for a in args {
        if a.len() > limit {
            return Err(usage(format!("an argument is longer than {limit} bytes")));
        }
        let s = a.to_str().ok_or_else(|| usage("arguments must be UTF-8 text"))?;
        if s != "--json" {
            words.push(s);
        }
    }
    let Some((&sub, rest)) = words.split_first() else {
        return Err(usage("no subcommand given"));
    };
    match sub {
        // remctld's help= option runs `help SUBCOMMAND [WORD]`.
        "help" if rest.len() <= 2 => Ok(Command::Help),
        "help" => Err(usage("help takes at most a subcommand")),
        "install" => install(rest),
        "status" => one_vm(rest).map(|vm| Command::Status { vm }),
        "cancel" => one_vm(rest).map(|vm| Command::Cancel { vm }),
        "settle" => no_more(rest).map(|_| Command::Settle),
        "start" => one_vm(rest).map(|vm| Command::Start { vm }),
        "stop" => stop(rest),
        "reboot" => one_vm(rest).map(|vm| Command::Reboot { vm }),
        "list" => no_more(rest).map(|_| Command::List),
        "images" => no_more(rest).map(|_| Command::Images),
        "machine" => machine(rest),
        "image" => image(rest),
        "templates" => no_more(rest).map(|_| Command::Templates),
        "template" => template(rest),
        "key" => key(rest),
        "ganeti" => crate::ganeti::OsOp::parse(rest)
            .map(Command::Ganeti)
            .ok_or_else(|| usage("ganeti needs create, export, import, rename, verify parameters or variants")),
        "console-keys" => super::requests::console_keys(rest),
        "console-serve" => no_more(rest).map(|_| Command::ConsoleServe),
        _ => Err(usage("unknown subcommand")),
    }
}

fn no_more(rest: &[&str]) -> Result<(), UsageError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(usage("unexpected argument"))
    }
}

pub(super) fn vm_name(s: Option<&&str>) -> Result<VmName, UsageError> {
    let s = s.ok_or_else(|| usage("missing machine name"))?;
    VmName::parse(s).map_err(value("machine name"))
}

pub(super) fn one_vm(rest: &[&str]) -> Result<VmName, UsageError> {
    let vm = vm_name(rest.first())?;
    no_more(&rest[1..])?;
    Ok(vm)
}

/// `key=value` words; keys not in `allowed` are errors, and only keys in
/// `repeatable` may be given more than once.
pub(super) fn pairs<'a>(words: &[&'a str], allowed: &[&str], repeatable: &[&str]) -> Result<Vec<(&'a str, &'a str)>, UsageError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let (k, v) = w.split_once('=').ok_or_else(|| usage(format!("key=value word {} has no '='", i + 1)))?;
        if !allowed.contains(&k) {
            return Err(unknown_key(i + 1, allowed));
        }
        if !repeatable.contains(&k) && out.iter().any(|(seen, _)| *seen == k) {
            return Err(usage(format!("{k}= given twice")));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Says which word was wrong but never what it held: a caller who put a
/// password in the wrong place (`Summer2024=x!`) must not see it echoed,
/// nor find it in the audit log.
fn unknown_key(position: usize, allowed: &[&str]) -> UsageError {
    usage(format!(
        "key=value word {position} has a key that is not allowed here (allowed: {}); its text is not repeated, as it may be a password",
        allowed.join(", ")
    ))
}

pub(super) fn get<'a>(p: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

pub(super) fn all<'a>(p: &[(&str, &'a str)], key: &str) -> Vec<&'a str> {
    p.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).collect()
}

pub(super) fn required<'a>(p: &[(&str, &'a str)], key: &str) -> Result<&'a str, UsageError> {
    get(p, key).ok_or_else(|| usage(format!("missing {key}=")))
}

