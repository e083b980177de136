//! doc/reply.schema.json, which every test's `--json` reply is checked
//! against (tests/common/reply.rs), is a valid schema, covers every
//! subcommand, and refuses replies that differ from the documented ones.
//! Fast: no program is run.

mod common;

use common::reply::{action, problems, schema, validator};
use serde_json::{json, Value};

/// Every subcommand as a request's first words.
const REQUESTS: &[&[&str]] = &[
    &["help"],
    &["install", "vm"],
    &["status", "vm"],
    &["cancel", "vm"],
    &["settle"],
    &["start", "vm"],
    &["stop", "vm"],
    &["reboot", "vm"],
    &["list"],
    &["images"],
    &["templates"],
    &["machine", "add", "vm"],
    &["machine", "remove", "vm"],
    &["machine", "show", "vm"],
    &["image", "import", "i"],
    &["template", "build", "i"],
    &["key", "add"],
    &["key", "list"],
    &["key", "remove"],
    &["ganeti", "verify"],
    &["console-keys"],
    &["console-serve"],
];

fn refs(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|r| r["$ref"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    if let Err(e) = jsonschema::draft202012::meta::validate(s) {
        panic!("doc/reply.schema.json is not a valid draft 2020-12 schema: {e}");
    }
    // And it compiles: every $ref resolves, every pattern is a regex.
    validator(None);
    for name in s["$defs"].as_object().unwrap().keys() {
        validator(Some(name));
    }
    // Something that is not a schema is refused by the same check.
    assert!(jsonschema::draft202012::meta::validate(&json!({"type": "no such type"})).is_err());
}

/// Each subcommand's success reply has a definition named by the word the
/// program uses for the request, and the top level admits each of them.
#[test]
fn every_subcommand_has_its_reply_defined() {
    let defs = schema()["$defs"].as_object().unwrap();
    let success = refs(&defs["success"]["anyOf"]);
    for words in REQUESTS {
        let a = action(words);
        assert!(defs.contains_key(a), "{words:?}: no definition {a:?}");
        assert!(success.contains(&format!("#/$defs/{a}")), "{words:?}: {a} is not one of the success replies");
    }
    assert_eq!(success.len(), REQUESTS.len(), "success replies {success:?}");
    assert_eq!(refs(&schema()["oneOf"]), ["#/$defs/failure", "#/$defs/success"]);
}

fn status_none() -> Value {
    json!({"ok": true, "vm": "web1", "state": "none", "image": null, "started_at": null,
           "finished_at": null, "elapsed_s": null, "console_tail": null})
}

fn status_recorded() -> Value {
    json!({"ok": true, "vm": "web1", "state": "installing", "image": "bookworm",
           "prepared_at": "2024-05-01T12:00:00Z", "started_at": "2024-05-01T12:00:01Z", "finished_at": null,
           "elapsed_s": 12, "running": true, "template": null, "reason": null, "progress": "booted",
           "waiting_dialog": null, "ssh_host_key": null, "console_tail": "Loading initrd"})
}

fn failure() -> Value {
    json!({"ok": false, "error": {"kind": "busy", "message": "machine web1 is already running"}})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn documented_replies_are_accepted() {
    for doc in [status_none(), status_recorded()] {
        assert_eq!(problems(Some("status"), 0, &doc), Vec::<String>::new(), "{doc}");
        assert_eq!(problems(None, 0, &doc), Vec::<String>::new(), "{doc}");
    }
    assert_eq!(problems(Some("status"), 5, &failure()), Vec::<String>::new());
    // A failure has the same shape whatever the subcommand.
    assert_eq!(problems(Some("machine-add"), 5, &failure()), Vec::<String>::new());
    assert_eq!(problems(Some("settle"), 0, &json!({"ok": true, "machines": []})), Vec::<String>::new());
}

/// Each reply is refused, and for the reason given (a piece of the
/// validator's complaint), not for some other.
#[test]
fn a_reply_that_differs_from_its_definition_is_refused() {
    let list_entry = json!({"vm": "a", "state": "none", "running": null, "ip": "192.0.2.1", "image": null});
    let cases = [
        ("an extra field", Some("status"), 0, with(status_recorded(), "debug", json!("x")), "as status-recorded: at \"\": Additional properties are not allowed ('debug' was unexpected)"),
        ("an extra field in a failure", Some("status"), 5, with(failure(), "hint", json!("x")), "('hint' was unexpected)"),
        ("an extra field in a list entry", Some("list"), 0,
         json!({"ok": true, "machines": [with(list_entry.clone(), "owner", json!("x"))]}), "at \"/machines/0\": Additional properties are not allowed ('owner' was unexpected)"),
        ("a missing field", Some("status"), 0, without(status_recorded(), "running"), "as status-recorded: at \"\": \"running\" is a required property"),
        ("a missing field of status none", Some("status"), 0, without(status_none(), "console_tail"), "as status-none: at \"\": \"console_tail\" is a required property"),
        ("a missing field in a list entry", Some("list"), 0, json!({"ok": true, "machines": [without(list_entry.clone(), "ip")]}), "\"ip\" is a required property"),
        ("a missing error message", Some("status"), 5, json!({"ok": false, "error": {"kind": "busy"}}), "\"message\" is a required property"),
        ("a state no install has", Some("status"), 0, with(status_recorded(), "state", json!("running")), "as status-recorded: at \"/state\": \"running\" is not one of"),
        ("a state of no machine in a list", Some("list"), 0, json!({"ok": true, "machines": [with(list_entry, "state", json!("stopped"))]}), "at \"/machines/0/state\""),
        ("a state none with an install's fields", Some("status"), 0, with(status_recorded(), "state", json!("none")), "as status-recorded: at \"/state\": \"none\" is not one of"),
        ("an unknown error kind", Some("status"), 2, with(failure(), "error", json!({"kind": "oops", "message": "m"})), "\"oops\" is not one of"),
        ("a kind not of the exit status", Some("status"), 2, failure(), "error.kind \"busy\" is not the kind of exit status 2"),
        ("ok true with a failure exit status", Some("status"), 5, status_none(), "at \"/ok\": false was expected"),
        ("ok false with exit status 0", Some("status"), 0, failure(), "as status-none: at \"/ok\": true was expected"),
        ("a wrong type", Some("status"), 0, with(status_recorded(), "elapsed_s", json!("12")), "as status-recorded: at \"/elapsed_s\": \"12\" is not of types"),
        ("a time that is not RFC 3339", Some("status"), 0, with(status_recorded(), "prepared_at", json!("yesterday")), "as status-recorded: at \"/prepared_at\": \"yesterday\" is not a \"date-time\""),
        ("another subcommand's reply", Some("cancel"), 0, status_none(), "as cancel (local): at \"\": Additional properties are not allowed"),
        ("a subcommand without a definition", Some("unknown"), 0, status_none(), "a success reply of \"unknown\", which has no definition"),
        ("not a reply at all", None, 0, json!({"ok": true, "vm": "web1"}), "is not valid under any of the schemas listed in the 'anyOf' keyword"),
    ];
    for (what, action, code, doc, why) in cases {
        let p = problems(action, code, &doc);
        assert!(p.iter().any(|e| e.contains(why)), "{what}: refused for {why:?}? {p:#?}\n{doc}");
    }
}

/// The test helper panics on a reply that is not documented, naming the
/// schema's complaint and the document.
#[test]
fn out_json_panics_on_an_undocumented_reply() {
    let out = common::Out {
        code: 0,
        stdout: with(status_none(), "secret", json!("x")).to_string(),
        stderr: String::new(),
        action: None,
    }
    .of_request(&["status", "web1", "--json"]);
    let e = std::panic::catch_unwind(|| out.json()).expect_err("an undocumented field was accepted");
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("does not match doc/reply.schema.json") && msg.contains("secret"), "{msg}");
    // The same reply without the extra field passes.
    let out = common::Out { stdout: status_none().to_string(), ..out };
    assert_eq!(out.json()["state"], "none");
}

/// The schema is the field table: every field of every reply says what it
/// is (itself, or the definition it refers to), and every object shape is
/// closed, so a new field cannot appear undocumented.
#[test]
fn every_field_is_described_and_every_shape_closed() {
    let defs = schema()["$defs"].as_object().unwrap();
    let described = |v: &Value| {
        v.get("description").is_some()
            || v["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")).is_some_and(|d| defs[d].get("description").is_some())
    };
    let mut bad = Vec::new();
    let mut stack = vec![("#".to_owned(), schema())];
    while let Some((at, v)) = stack.pop() {
        match v {
            Value::Object(m) => {
                if m.get("type") == Some(&json!("object")) {
                    if m.get("additionalProperties") != Some(&json!(false)) {
                        bad.push(format!("{at}: not closed (additionalProperties: false)"));
                    }
                    for (k, p) in m.get("properties").and_then(Value::as_object).into_iter().flatten() {
                        if !described(p) {
                            bad.push(format!("{at}/properties/{k}: no description"));
                        }
                    }
                }
                stack.extend(m.iter().map(|(k, x)| (format!("{at}/{k}"), x)));
            }
            Value::Array(a) => stack.extend(a.iter().enumerate().map(|(i, x)| (format!("{at}/{i}"), x))),
            _ => {}
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
