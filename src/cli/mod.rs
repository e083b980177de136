//! remctl-style argv: `SUBCOMMAND [VM] [key=value ...]`, with `--json`
//! allowed anywhere. Every value is parsed into its type here, at the
//! edge; nothing past this module sees a raw argument.
//!
//! This module holds the usage error every parser returns; the command
//! type, the word list and help, the parser and each request live apart.

use crate::types::Rule;

mod argv;
mod command;
mod requests;
#[cfg(test)]
mod tests;
mod words;

pub use argv::{parse, wants_json, MAX_ARGS, MAX_ARG_BYTES};
pub use command::{Command, TemplateFrom};
pub use words::{action_word, HELP};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    #[error("{0}; see `guest-installer help`")]
    Usage(String),
    #[error("invalid {field}: {rule}")]
    Value { field: String, rule: Rule },
}

fn usage(s: impl Into<String>) -> UsageError {
    UsageError::Usage(s.into())
}

fn value(field: &str) -> impl Fn(Rule) -> UsageError + '_ {
    move |rule| UsageError::Value { field: field.to_owned(), rule }
}
