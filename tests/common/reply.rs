//! Every `--json` reply the tests read is checked against the documented
//! reply shapes, doc/reply.schema.json: a success reply against the
//! definition named after its subcommand, a failure against `failure`
//! (and its `error.kind` against the exit status). A field the schema does
//! not list, a missing one or a value outside its type fails the test.

use jsonschema::Validator;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::OnceLock;

pub fn schema_path() -> std::path::PathBuf {
    super::repo().join("doc/reply.schema.json")
}

/// The schema document as shipped.
pub fn schema() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| {
        let p = schema_path();
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
    })
}

/// A validator of the whole schema, or of one of its definitions (the
/// schema with its top level pointed at `#/$defs/NAME`).
pub fn validator(def: Option<&str>) -> Validator {
    if let Some(name) = def {
        assert!(schema()["$defs"].get(name).is_some(), "doc/reply.schema.json has no definition {name:?}");
    }
    validator_at(def.map(|d| format!("#/$defs/{d}")).as_deref())
}

/// A validator of the schema at `pointer` (`#/$defs/...`), or of all of it.
fn validator_at(pointer: Option<&str>) -> Validator {
    let mut doc = schema().clone();
    if let Some(p) = pointer {
        let top = doc.as_object_mut().unwrap();
        top.remove("oneOf");
        top.insert("$ref".into(), Value::from(p));
    }
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&doc)
        .unwrap_or_else(|e| panic!("doc/reply.schema.json does not compile: {e}"))
}

fn cached(pointer: Option<&str>) -> &'static Validator {
    static V: OnceLock<std::sync::Mutex<BTreeMap<Option<String>, &'static Validator>>> = OnceLock::new();
    let mut m = V.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    m.entry(pointer.map(str::to_owned)).or_insert_with(|| Box::leak(Box::new(validator_at(pointer))))
}

/// The subcommand word (`install`, `machine-add`, ...) the program takes
/// `args` for: the reply definition's name.
pub fn action(args: &[&str]) -> &'static str {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    guest_installer::cli::action_word(&args)
}

fn errors(pointer: Option<&str>, doc: &Value) -> Vec<String> {
    cached(pointer).iter_errors(doc).map(|e| format!("at {:?}: {e}", e.instance_path.as_str())).collect()
}

/// Why `doc` is not valid under the definition `def`. For a definition
/// with variants (`oneOf`), why under each of them: "not valid under any
/// of the schemas" alone would not say which field is wrong.
fn def_errors(def: &str, doc: &Value) -> Vec<String> {
    let pointer = format!("#/$defs/{def}");
    let out = errors(Some(&pointer), doc);
    let Some(variants) = schema()["$defs"][def]["oneOf"].as_array().filter(|_| !out.is_empty()) else {
        return out;
    };
    let mut why = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let name = match (v["title"].as_str(), v["$ref"].as_str()) {
            (Some(t), _) => t.to_owned(),
            (None, Some(r)) => r.trim_start_matches("#/$defs/").to_owned(),
            (None, None) => format!("{def} variant {i}"),
        };
        let e = errors(Some(&format!("{pointer}/oneOf/{i}")), doc);
        if e.is_empty() {
            why.push(format!("as {name}: valid (and so under another variant: {def} is ambiguous)"));
        }
        why.extend(e.into_iter().map(|e| format!("as {name}: {e}")));
    }
    why
}

/// The exit status a failure's kind means (DESIGN.md, "Exit codes and JSON").
fn exit_code(kind: &str) -> Option<i32> {
    ["failed", "invalid", "denied", "not_found", "busy"].iter().position(|k| *k == kind).map(|i| i as i32 + 1)
}

/// Why `doc`, printed by the request `action` that exited with `code`, is
/// not a documented reply (empty: it is one). `action` None: any reply.
pub fn problems(action: Option<&str>, code: i32, doc: &Value) -> Vec<String> {
    let mut out = match (code, action) {
        (0, Some(a)) if schema()["$defs"].get(a).is_none() => vec![format!("a success reply of {a:?}, which has no definition")],
        (0, Some(a)) => def_errors(a, doc),
        (0, None) => def_errors("success", doc),
        _ => def_errors("failure", doc),
    };
    let kind = doc["error"]["kind"].as_str().unwrap_or_default();
    if code != 0 && out.is_empty() && exit_code(kind) != Some(code) {
        out.push(format!("error.kind {kind:?} is not the kind of exit status {code}"));
    }
    out
}

/// Panics, naming the schema errors and the document, unless `doc` is a
/// documented reply of `action` with exit status `code`.
pub fn check(action: Option<&str>, code: i32, doc: &Value) {
    let p = problems(action, code, doc);
    assert!(
        p.is_empty(),
        "the --json reply of {} (exit {code}) does not match doc/reply.schema.json:\n  {}\n{doc:#}",
        action.unwrap_or("(any subcommand)"),
        p.join("\n  ")
    );
}
