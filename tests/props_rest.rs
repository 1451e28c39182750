//! A property test of the REST API as a whole, on one embedded node: any
//! documented operation, called with path parameters that name real or
//! made-up things, any query parameters and any body (fields of its schema
//! with values of any type, or any bytes) is answered with a status the API
//! document names for that operation — never a 500 — and an error names one
//! of the codes the document gives for its status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;
mod props_support;

use common::server::{Mode, TestServer, code};
use common::ws::{join, post};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

/// One documented operation.
#[derive(Clone, Debug)]
struct Operation {
    method: String,
    path: String,
    query: Vec<String>,
    fields: Vec<String>,
    /// Status → the error codes its description names (empty: not stated).
    responses: Map<String, Value>,
}

/// The operations of the document, but those that are not JSON requests.
fn operations(doc: &Value) -> Vec<Operation> {
    let schemas = &doc["components"]["schemas"];
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/files") || path == "/ws" || path == "/metrics" || path.ends_with("/backup") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let schema = match schema["$ref"].as_str() {
                Some(reference) => &schemas[reference.rsplit('/').next().unwrap()],
                None => schema,
            };
            let fields =
                schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
            out.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                query,
                fields,
                responses: op["responses"].as_object().unwrap().clone(),
            });
        }
    }
    out
}

/// What one request is made of.
#[derive(Clone, Debug)]
struct Request {
    op: Index,
    /// Per path parameter: the real thing (`None`) or this text.
    path: Vec<Option<String>>,
    query: Vec<(Index, String)>,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    None,
    /// Fields of the operation's schema (by index), with any values.
    Fields(Vec<(Index, Value)>, bool),
    Bytes(Vec<u8>, Option<String>),
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just(0i64), Just(1), Just(-1), any::<i64>()].prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        (-1e9f64..1e9).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        Just(Value::String("alice".into())),
        Just(Value::String("https://example.com/hook".into())),
        Just(Value::String("👍".into())),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-z_]{1,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.@:-]{1,12}",
        Just("0".to_owned()),
        Just("18446744073709551616".to_owned()),
        "%[0-9A-F]{2}",
        "\\PC{0,8}",
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let path = vec(prop_oneof![3 => Just(None), 1 => text().prop_map(Some)], 6);
    let query = vec((any::<Index>(), prop_oneof![text(), any::<u64>().prop_map(|n| n.to_string())]), 0..3);
    let body = prop_oneof![
        1 => Just(Body::None),
        4 => (vec((any::<Index>(), any_json()), 0..5), any::<bool>()).prop_map(|(f, nest)| Body::Fields(f, nest)),
        1 => (vec(any::<u8>(), 0..48), proptest::option::of(prop::sample::select(vec![
            "application/json".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
            "text/plain".to_owned(),
        ])))
            .prop_map(|(b, t)| Body::Bytes(b, t)),
    ];
    (any::<Index>(), path, query, body).prop_map(|(op, path, query, body)| Request { op, path, query, body })
}

/// The real things a path parameter may name.
struct Fixture {
    token: String,
    chat: u64,
    message: u64,
}

fn fill(path: &str, given: &[Option<String>], real: &Fixture) -> String {
    let mut params = given.iter();
    path.split('/')
        .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => match params.next().cloned().flatten() {
                Some(text) => url_segment(&text),
                None => match name {
                    "token" => real.token.clone(),
                    "number" => real.chat.to_string(),
                    "message" => real.message.to_string(),
                    "user" => "alice".into(),
                    "emoji" => "%F0%9F%91%8D".into(),
                    "id" => "AAAAAAAAAAAAAAAAAAAAAA".into(),
                    "device" => "phone".into(),
                    _ => "x".into(),
                },
            },
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A path segment: percent-encoded but what is already an escape.
fn url_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~%@:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // An empty, `.` or `..` segment would be another path once the URL is normalised.
    match out.to_ascii_lowercase().replace("%2e", ".").as_str() {
        "" => "%20".into(),
        "." | ".." => format!("{out}x"),
        _ => out,
    }
}

async fn call(s: &TestServer, ops: &[Operation], request: Request) -> Result<(), TestCaseError> {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    join(s, &token, chat, "alice").await;
    let message = post(s, &token, chat, "hello").await;
    let real = Fixture { token, chat, message };

    let op = &ops[request.op.index(ops.len())];
    let mut url = s.url(&fill(&op.path, &request.path, &real));
    if !op.query.is_empty() && !request.query.is_empty() {
        let pairs: Vec<(String, String)> = request
            .query
            .iter()
            .map(|(i, v)| (op.query[i.index(op.query.len())].clone(), v.clone()))
            .collect();
        url = format!("{url}?{}", serde_urlencoded::to_string(pairs).unwrap());
    }
    let mut builder = s.http.request(op.method.parse().unwrap(), &url);
    let sent = match &request.body {
        Body::None => "no body".to_owned(),
        Body::Fields(fields, nest) => {
            let mut object = Map::new();
            for (i, value) in fields {
                let name = match op.fields.len() {
                    0 => format!("f{}", i.index(4)),
                    n => op.fields[i.index(n)].clone(),
                };
                object.insert(name, value.clone());
            }
            let body = if *nest { json!({ "message": object }) } else { Value::Object(object) };
            builder = builder.json(&body);
            body.to_string()
        }
        Body::Bytes(bytes, content_type) => {
            if let Some(content_type) = content_type {
                builder = builder.header("content-type", content_type);
            }
            builder = builder.body(bytes.clone());
            format!("{} bytes", bytes.len())
        }
    };
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let at = format!("{} {url} with {sent}", op.method);
    prop_assert_ne!(status, 500, "{}: {}", at, answer);
    let Some(documented) = op.responses.get(&status.to_string()) else {
        return Err(TestCaseError::fail(format!("{at}: {status} is not documented: {answer}")));
    };
    // A path segment that does not decode (a `%` escape of no UTF-8) cannot
    // be read at all: the router's plain 404 `not_found`, as for any unknown path.
    let undecodable = request.path.iter().flatten().any(|p| p.contains('%'));
    if status == 404 && code(&answer) == "not_found" && undecodable {
        return Ok(());
    }
    if status >= 400 {
        let description = documented["description"].as_str().unwrap_or_default();
        let codes = weft_codes(description);
        prop_assert!(
            codes.is_empty() || codes.contains(&code(&answer)),
            "{}: {} `{}` is not among {:?}",
            at,
            status,
            code(&answer),
            codes
        );
    }
    Ok(())
}

/// The codes a response description names before its colon (as the document's own check reads them).
fn weft_codes(description: &str) -> Vec<&str> {
    let head = description.split(": ").next().unwrap_or_default();
    head.split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect()
}

#[test]
fn any_request_gets_a_documented_answer() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = runtime.block_on(TestServer::start(Mode::Embedded));
    let doc = runtime.block_on(server.get("/api/v1/openapi.json")).1;
    let ops = operations(&doc);
    assert!(ops.len() > 40, "{} operations", ops.len());
    let config = proptest::test_runner::Config { failure_persistence: None, ..props_support::budget(256) };
    let outcome =
        TestRunner::new(config).run(&request(), |request| runtime.block_on(call(&server, &ops, request)));
    runtime.block_on(server.stop());
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
