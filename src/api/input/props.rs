//! Property tests of body reading: any body under any content type is read
//! or refused with a stated code; every field reader refuses with
//! `invalid_field`; flat, nested, JSON and form bodies read alike.

use axum::body::Body;
use axum::extract::Request;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{Fields, parse_form, parse_json, read_fields};
use crate::api::error::ApiError;

/// The case budget and seed of `tests/props_support` (`docs/design.md`, "Property tests").
pub(in crate::api) fn budget(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    let set = |name: &str| std::env::var_os(name).is_some();
    ProptestConfig {
        cases: if set("PROPTEST_CASES") { defaults.cases } else { cases },
        rng_seed: if set("PROPTEST_RNG_SEED") {
            defaults.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(0x7765_6674)
        },
        ..defaults
    }
}

/// The codes a body may be refused with.
const BODY_CODES: &[&str] =
    &["malformed_json", "malformed_body", "unsupported_content_type", "payload_too_large", "invalid_field"];

fn code(e: &ApiError) -> &'static str {
    e.status_and_code().1
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
        "[0-9 ]{0,24}".prop_map(Value::String),
        "[A-Za-z0-9_-]{22}(,[A-Za-z0-9_ -]{0,23}){0,3}".prop_map(Value::String),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map("\\PC{0,8}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("application/json; charset=utf-8".to_owned()),
        Just("APPLICATION/VND.API+JSON".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
        Just("text/plain".to_owned()),
        Just(String::new()),
        "[ -~]{0,24}",
    ])
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        any_json().prop_map(|v| json!({"message": v}).to_string().into_bytes()),
        "([a-z%\\[\\]]{0,12}=[^&]{0,8}&?){0,4}".prop_map(String::into_bytes),
    ]
}

fn read(
    content_type: Option<&str>,
    length: Option<&str>,
    body: Vec<u8>,
    limit: usize,
) -> Result<Fields, ApiError> {
    let mut request = Request::builder().method("POST").uri("/");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(length) = length {
        request = request.header("content-length", length);
    }
    let Ok(request) = request.body(Body::from(body)) else {
        // A header value the HTTP layer itself would never hand over.
        return Ok(Fields::default());
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    let Ok(runtime) = runtime else { return Ok(Fields::default()) };
    runtime.block_on(read_fields(request, limit, "message"))
}

/// Calls every field reader on `name`; each answers or refuses with `invalid_field`.
fn read_every_way(fields: &Fields, name: &str, min: u64, max: u64, len: usize) -> Result<(), TestCaseError> {
    let results = [
        fields.required_string(name, len).err(),
        fields.clearable_string(name, len).err(),
        fields.optional_u64(name, min, max).err(),
        fields.required_u64(name, min, max).err(),
        fields.clearable_object(name).err(),
        fields.optional_attachments(name, len).err(),
        fields.optional_strings(name, len, len).err(),
        fields.optional_bool(name).err(),
        fields.optional_user(name).err(),
    ];
    for e in results.iter().flatten() {
        prop_assert_eq!(code(e), "invalid_field", "{:?}", e);
        prop_assert!(!e.to_string().is_empty());
    }
    if let Ok(Some(n)) = fields.optional_u64(name, min, max) {
        prop_assert!((min..=max).contains(&n));
    }
    if let Ok(s) = fields.required_string(name, len) {
        prop_assert!(!s.trim().is_empty() && s.chars().count() <= len);
    }
    if let Ok(ids) = fields.optional_attachments(name, len) {
        prop_assert!(ids.len() <= len);
    }
    Ok(())
}

proptest! {
    #![proptest_config(budget(256))]

    /// Any body, any declared type and length: fields, or a stated refusal.
    #[test]
    fn any_body_is_read_or_refused(
        content_type in content_type(),
        length in proptest::option::of(prop_oneof!["[0-9]{1,22}", "[ -~]{0,8}"]),
        body in body(),
        limit in 1usize..256,
    ) {
        match read(content_type.as_deref(), length.as_deref(), body.clone(), limit) {
            Ok(_) => prop_assert!(body.len() <= limit),
            Err(e) => prop_assert!(BODY_CODES.contains(&code(&e)), "{e:?}"),
        }
    }

    /// Any JSON object's fields, read as any type with any bounds.
    #[test]
    fn every_field_reader_refuses_with_invalid_field(
        value in any_json(),
        name in prop_oneof![Just("body".to_owned()), "\\PC{0,6}"],
        (min, max) in (any::<u64>(), any::<u64>()),
        len in 0usize..40,
    ) {
        let text = json!({ "message": { name.clone(): value.clone() }, "other": value }).to_string();
        let fields = Fields(parse_json(text.as_bytes(), "message").map_err(|e| TestCaseError::fail(e.to_string()))?);
        read_every_way(&fields, &name, min, max, len)?;
        read_every_way(&fields, "other", min, max, len)?;
        // The same value as form text.
        let form = Fields(Map::from_iter([(name.clone(), Value::String(value.to_string()))]));
        read_every_way(&form, &name, min, max, len)?;
    }

    /// Flat and nested, JSON and form: the same string fields.
    #[test]
    fn flat_nested_json_and_form_bodies_read_alike(
        fields in btree_map("[a-z_]{1,10}", "\\PC{0,12}", 0..6),
    ) {
        let map: Map<String, Value> = fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let flat = parse_json(Value::Object(map.clone()).to_string().as_bytes(), "message");
        let nested = parse_json(json!({ "message": map.clone() }).to_string().as_bytes(), "message");
        let pairs = |nest: bool| {
            let pairs: Vec<(String, &String)> = fields
                .iter()
                .map(|(k, v)| (if nest { format!("message[{k}]") } else { k.clone() }, v))
                .collect();
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        };
        let form = parse_form(pairs(false).as_bytes(), "message");
        let nested_form = parse_form(pairs(true).as_bytes(), "message");
        for read in [flat, nested, form, nested_form] {
            match read {
                Ok(read) => prop_assert_eq!(&read, &map),
                Err(e) => prop_assert!(false, "{e:?}"),
            }
        }
    }
}
