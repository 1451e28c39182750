//! The OpenAPI document and the router agree, both ways: every route is declared
//! by a handler's `#[utoipa::path]` and added with `routes!` (no route is registered
//! any other way: a scan of `src/`), and every documented operation is routed (a live
//! node answers each from its handler, never from the router's fallback).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::path::Path;

use common::server::{Mode, TestServer, code};
use serde_json::Value;

/// Where a route may be registered without the document: the web chat under `/demo`
/// (its embedded files, and the same-origin helper its page calls), which belongs to
/// the bundled demo rather than to the public API. Nothing else.
const UNDOCUMENTED: &[&str] = &["src/demo/"];

/// What registers a route without a `#[utoipa::path]`: axum's own routing.
const BYPASSES: &[&str] = &[".route(", ".route_service(", ".nest(", ".nest_service(", "axum::routing"];

#[test]
fn no_route_is_registered_outside_the_documented_router() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 50, "the scan found only {} files", files.len());
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        if UNDOCUMENTED.iter().any(|prefix| relative.starts_with(prefix)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if let Some(bypass) = BYPASSES.iter().find(|b| code.contains(*b)) {
                found.push(format!("{relative}:{}: `{bypass}` in {:?}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "routes registered outside `routes!` (declare them with #[utoipa::path]):\n{}",
        found.join("\n")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A value for each path parameter: the handler answers it, whatever it finds.
fn placeholder(name: &str) -> &'static str {
    match name {
        "token" => "no-such-application",
        "number" | "message" => "1",
        "user" => "alice",
        "emoji" => "%F0%9F%91%8D",
        "id" | "session" => "AAAAAAAAAAAAAAAAAAAAAA",
        "device" => "phone",
        "key" => "some/object",
        other => panic!("no placeholder for path parameter `{other}`: add one"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let s = TestServer::start(Mode::Embedded).await;
    let (status, doc) = s.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "OpenAPI {version}");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(!path.starts_with("/demo"), "{path}: /demo is the web chat's (UNDOCUMENTED)");
        let url: String = path
            .split('/')
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => placeholder(name),
                None => segment,
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().unwrap() {
            let at = format!("{} {path}", method.to_uppercase());
            let request = s.http.request(method.to_uppercase().parse().unwrap(), s.url(&url));
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 405, "{at}: the router has no handler for the method: {body}");
            assert!(
                !(status == 404 && code(&body) == "not_found"),
                "{at}: answered by the router's fallback (or a path the handler cannot read): {body}"
            );
            assert!(
                operation["responses"].get(status.to_string()).is_some(),
                "{at}: answered {status}, which the document does not name: {body}"
            );
            operations += 1;
        }
    }
    // Every route of src/api, plus /ws and the document itself.
    assert!(operations >= 54, "only {operations} operations");
    s.stop().await;
}
