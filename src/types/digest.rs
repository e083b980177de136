//! The digest an imported image is checked against: a caller's value that
//! must be pure hex before it is compared or written anywhere.

use super::Rule;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

string_type!(
    /// A SHA-256 digest as 64 lowercase hex digits.
    Sha256Hex,
    |s| {
        if s.is_empty() {
            // What a SHA256SUMS lookup that matched no line gives.
            Err(Rule("is empty: give the ISO's SHA-256 from the SHA256SUMS published beside it (64 hexadecimal digits)"))
        } else if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(())
        } else {
            Err(Rule("must be 64 lowercase hexadecimal digits"))
        }
    }
);
