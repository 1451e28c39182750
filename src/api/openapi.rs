//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! Nothing here lists a route: each handler's `#[utoipa::path]` attribute declares its
//! method, path, parameters, body and answers, and [`super::router`] registers the
//! handlers through `utoipa_axum::routes!`, which routes each one at the path its
//! attribute names and adds the attribute to the document. A route is in the document
//! because it is routed, so the two cannot drift (`tests/openapi.rs` checks both ways).
//!
//! An attribute names its error answers by their stable codes only:
//! `(status = 404, description = "`application_not_found`, `chat_not_found`")`.
//! [`finish`] turns each into the [`ErrorBody`] schema with `code` limited to the codes
//! named before the first `: ` of the description, so a client (and Schemathesis) can rely
//! on them, and adds `Retry-After` to 409 and 503 answers, as `edge::http_error` sends it.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::edge::ErrorBody;

/// 503 answers of any request that reaches the store.
pub const UNAVAILABLE: &str = "`store_unavailable`, `redis_unavailable`, `draining`: a backing service does not \
                               answer, or the node is shutting down; retry after `Retry-After` seconds";
/// 500: a bug or unreadable data, logged on the node.
pub const INTERNAL: &str = "`internal`: a bug or unreadable data (logged on the node)";
/// 400 answers of any request with a body.
pub const BAD_BODY: &str =
    "`malformed_json`, `malformed_body`, `unsupported_content_type`: the body cannot be read";
/// 413 answers of any request with a body.
pub const TOO_LARGE: &str = "`payload_too_large`: the body is over `server.max_body_bytes`";
/// 404 answers of a request under an application that names nothing else.
pub const NO_APP: &str = "`application_not_found`: no application has this token";
/// 404 answers of a request under a chat.
pub const NO_CHAT: &str = "`application_not_found`, `chat_not_found`";
/// 404 answers of a request under a message.
pub const NO_MESSAGE: &str = "`application_not_found`, `chat_not_found`, `message_not_found`";
/// 422 answers of a request whose query or path names an invalid value.
pub const BAD_PARAMETER: &str = "`invalid_parameter`: a query parameter is out of range or malformed";
/// 422 answers of a request whose path names an invalid user id.
pub const BAD_USER: &str = "`invalid_field`: the user id is not 1–128 letters, digits and `_ . @ : -`";

/// The document's root: what no handler says (title and version come from Cargo).
#[derive(OpenApi)]
#[openapi(
    info(description = "The REST API of weft, a horizontally clustered chat fabric.\n\n\
        An application's token names it in every path under `/api/v1/applications/{token}`: \
        it is the application's secret and authorizes those requests (OpenAPI has no security \
        scheme for a path segment). A server key (`wk_…`, made with `POST …/keys`) sent as \
        `Authorization: Bearer` stands in for the token, with the application's id in its place, \
        limited to the key's scopes (see docs/security.md). Creating an application needs the admin key \
        (`admin_key`) when the node is configured with one. Bodies may be flat JSON, \
        Rails-nested JSON (`{\"application\":{\"name\":\"x\"}}`) or form data.\n\n\
        Every error is `{\"error\":{\"code\",\"message\"}}` with a stable code; each answer lists \
        the codes it can carry. A path that names no route is 404 `not_found`, a method the \
        route lacks is 405 `method_not_allowed`, and a node holding too many connections \
        answers 503 `overloaded` and closes the connection. See docs/protocol.md for the \
        WebSocket protocol spoken after `GET /ws`."),
    components(schemas(ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "applications", description = "Applications, their signing secrets and user tokens"),
        (name = "sessions", description = "Sessions: refresh tokens, their rotation and revocation"),
        (name = "chats", description = "Chats and their members"),
        (name = "messages", description = "Messages, threads, versions and reactions"),
        (name = "attachments", description = "Uploads, and the node's own signed file URLs"),
        (name = "search", description = "Full-text search"),
        (name = "realtime", description = "Presence and read receipts; the WebSocket endpoint"),
        (name = "webhooks", description = "Webhooks and their delivery log"),
        (name = "notifications", description = "Devices, notification settings, email unsubscribe"),
        (name = "operations", description = "Health, readiness, metrics, the cluster, this document"),
    )
)]
pub struct ApiDoc;

/// The security schemes operations refer to.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build(),
            )
        };
        components.add_security_scheme(
            "admin_key",
            bearer("`server.admin_key`: required to create applications and read the cluster, when set"),
        );
        components.add_security_scheme(
            "metrics_token",
            bearer("`metrics.token` (or the admin key): required for `/metrics` when either is set"),
        );
        components.add_security_scheme(
            "user_token",
            bearer("A user token: a JWT signed with the application's secret or by its identity provider"),
        );
        components.add_security_scheme(
            "user_token_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A user token in the query, for clients (browsers) that cannot set headers on a WebSocket",
            ))),
        );
    }
}

/// The finished document, as served; filled in once the router is built.
#[derive(Clone, Default)]
pub struct Document(Arc<OnceLock<Bytes>>);

impl Document {
    /// Keeps the finished document for [`serve`].
    pub fn set(&self, document: &Value) {
        let bytes = serde_json::to_vec(document).unwrap_or_default();
        // Set once, by the router that made it.
        let _ = self.0.set(Bytes::from(bytes));
    }
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "get_openapi",
    tag = "operations",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", body = Object),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn serve(State(document): State<Document>) -> Response {
    match document.0.get() {
        Some(bytes) => {
            ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes.clone()).into_response()
        }
        None => crate::edge::http_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"),
    }
}

/// The document as served: `doc` with wildcard paths in OpenAPI's form and each error
/// answer's schema made from the codes its description names.
pub fn finish(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let old = std::mem::take(paths);
        for (path, mut item) in old {
            let under_app = path.starts_with("/api/v1/applications/{token}");
            for (_, operation) in item.as_object_mut().into_iter().flatten() {
                optional_body(operation);
                if under_app {
                    super::access::document(operation);
                }
                if let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) {
                    for (status, response) in responses.iter_mut() {
                        error_schema(status, response);
                    }
                }
            }
            paths.insert(path.replace("{*", "{"), item);
        }
    }
    doc
}

/// utoipa writes an optional body (`request_body = Option<T>`) as `T` or JSON `null`; here
/// optional means no body at all (`Input` reads an empty body as no fields, and refuses `null`).
fn optional_body(operation: &mut Value) {
    let Some(body) = operation.get_mut("requestBody") else { return };
    if body.get("required").and_then(Value::as_bool) == Some(true) {
        return;
    }
    for (_, media) in body["content"].as_object_mut().into_iter().flatten() {
        let schema = &mut media["schema"];
        let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) else { continue };
        let not_null: Vec<&Value> = alternatives.iter().filter(|s| s["type"] != "null").collect();
        if let [only] = not_null[..] {
            *schema = only.clone();
        }
    }
}

/// The codes an error answer's description names: the `code`s in backticks before its first `: `.
pub fn codes(description: &str) -> Vec<&str> {
    let head = description.split(": ").next().unwrap_or_default();
    head.split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect()
}

fn error_schema(status: &str, response: &mut Value) {
    let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
    let Some(response) = response.as_object_mut() else { return };
    if !is_error || response.get("content").is_some_and(|c| c.as_object().is_some_and(|c| !c.is_empty())) {
        return;
    }
    let description = response.get("description").and_then(Value::as_str).unwrap_or_default();
    let codes = codes(description);
    if codes.is_empty() {
        return;
    }
    let schema = json!({
        "allOf": [
            { "$ref": "#/components/schemas/ErrorBody" },
            { "type": "object", "properties": { "error": { "type": "object", "properties": {
                "code": { "type": "string", "enum": codes },
            } } } },
        ]
    });
    response.insert("content".into(), json!({ "application/json": { "schema": schema } }));
    if status == "409" || status == "503" {
        let headers = response.entry("headers").or_insert_with(|| Value::Object(Map::new()));
        if let Some(headers) = headers.as_object_mut() {
            headers.insert(
                "Retry-After".into(),
                json!({ "description": "Seconds to wait before retrying", "schema": { "type": "integer" } }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::api::ApiError;

    /// Every stable code a REST handler can answer with, and its status.
    fn statuses() -> BTreeMap<&'static str, u16> {
        use crate::attachments::SignatureError;
        let api = [
            ApiError::Malformed("JSON"),
            ApiError::Malformed("form data"),
            ApiError::UnsupportedContentType,
            ApiError::InvalidField(String::new()),
            ApiError::InvalidParameter(String::new()),
            ApiError::Unauthorized,
            ApiError::InvalidToken(String::new()),
            ApiError::Forbidden,
            ApiError::NotFound("not_found"),
            ApiError::NotFound("attachment_not_found"),
            ApiError::NotFound("backup_unavailable"),
            ApiError::MethodNotAllowed,
            ApiError::PayloadTooLarge(0),
            ApiError::SignedUrl(SignatureError::Expired),
            ApiError::SignedUrl(SignatureError::Invalid),
            ApiError::ContentTypeMismatch,
            ApiError::InvalidKey,
            ApiError::InsufficientScope(crate::auth::server_key::Scope::Admin),
            ApiError::InvalidScope(String::new()),
            ApiError::NotFound("key_not_found"),
        ];
        let api = api.iter().map(ApiError::status_and_code);
        let domain = crate::edge::KINDS.iter().map(|kind| crate::edge::describe(*kind));
        api.chain(domain).map(|(status, code)| (code, status.as_u16())).collect()
    }

    fn document() -> Value {
        finish(crate::api::routes().into_openapi())
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut all = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                all.push((method.clone(), path.clone(), operation));
            }
        }
        all
    }

    #[test]
    fn every_error_answer_names_codes_of_its_status() {
        let (doc, statuses) = (document(), statuses());
        for (method, path, operation) in operations(&doc) {
            let at = format!("{method} {path}");
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                let status: u16 = status.parse().unwrap_or_else(|_| panic!("{at}: status {status}"));
                if status < 400 {
                    continue;
                }
                let description = response["description"].as_str().unwrap_or_default();
                let codes = codes(description);
                if codes.is_empty() {
                    // An answer of its own (`/readyz`'s 503), not an error body.
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert!(schema.is_string(), "{at} {status}: neither codes nor a body in {description:?}");
                    continue;
                }
                for code in codes {
                    assert_eq!(statuses.get(code), Some(&status), "{at}: `{code}` is not a {status} code");
                }
                assert!(
                    response["content"]["application/json"]["schema"]["allOf"].is_array(),
                    "{at} {status}"
                );
            }
        }
    }

    #[test]
    fn every_operation_is_complete() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for (method, path, operation) in operations(&doc) {
            let at = format!("{method} {path}");
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(ids.insert(id.to_owned()), "{at}: operationId {id:?} is not unique");
            let responses = operation["responses"].as_object().cloned().unwrap_or_default();
            assert!(responses.keys().any(|s| s.starts_with('1') || s.starts_with('2')), "{at}: no success");
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let templated: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            assert_eq!(declared, templated, "{at}: path parameters");
            let body_schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            assert!(body_schema.get("oneOf").is_none(), "{at}: a body that may be JSON null");
            if operation.get("requestBody").is_some() && !path.starts_with("/files/") {
                for status in ["400", "413", "422"] {
                    assert!(responses.contains_key(status), "{at}: a body and no {status}");
                }
            }
            if templated.contains("token") {
                let not_found = responses.get("404").map(|r| r["description"].as_str().unwrap_or_default());
                assert!(
                    not_found.is_some_and(|d| codes(d).contains(&"application_not_found")),
                    "{at}: no 404 `application_not_found`"
                );
            }
        }
    }

    #[test]
    fn the_files_route_is_where_signed_urls_point() {
        let path = format!("{}/{{key}}", crate::attachments::FILES_ROUTE);
        assert!(document()["paths"].get(&path).is_some(), "{path}");
    }

    #[test]
    fn codes_are_read_before_the_colon() {
        assert_eq!(codes("`a_b`, `c`: not `d`"), ["a_b", "c"]);
        assert_eq!(codes("`internal`"), ["internal"]);
        assert!(codes("the `Retry-After` header").is_empty());
    }
}
