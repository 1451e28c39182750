//! The demo's files, built into the binary, with their headers.
//!
//! Every file is answered with `Cache-Control: no-cache` and an `ETag` of its
//! content: a browser keeps a copy and asks each time whether it is current
//! (304, no body), so a new binary's files are seen at the next load with no
//! versioned names and no build step. The page's Content-Security-Policy lets
//! it load only its own files and connect only to this node (its WebSocket
//! included), plus the attachment store's origin when files live elsewhere.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::Digest as _;

use super::PREFIX;
use crate::chat::ChatService;

/// One embedded file.
struct Asset {
    /// Its name under `/demo/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file of the demo: `web/demo/`, and the client library from `clients/js/dist`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/demo/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/demo/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/demo/app.js"),
    },
    Asset {
        name: "chat.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/demo/chat.js"),
    },
    Asset {
        name: "view.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/demo/view.js"),
    },
    Asset {
        name: "weft-client.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../clients/js/dist/index.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../web/demo/icon.svg"),
    },
];

/// Each asset's ETag (a hash of its content), in the order of [`ASSETS`].
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = sha2::Sha256::digest(asset.body);
            let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
        })
        .collect()
});

/// The page's Content-Security-Policy, less the node's WebSocket origin (added per request).
#[derive(Clone, Debug)]
pub struct Csp {
    /// Origins beside the node that serve attachments (S3, or `attachments.public_url`).
    files: Arc<str>,
}

impl Csp {
    /// The policy for this node: its own origin, and where its attachments live.
    pub fn for_node(chat: &ChatService) -> Self {
        let mut origins = Vec::new();
        if let Ok(config) = chat.attachments().config() {
            for url in [&config.s3_endpoint, &config.public_url] {
                if let Ok(url) = url::Url::parse(url) {
                    origins.push(url.origin().ascii_serialization());
                }
            }
            if config.s3_endpoint.is_empty() && !config.s3_bucket.is_empty() {
                origins.push("https://*.amazonaws.com".to_owned());
            }
        }
        origins.retain(|o| o != "null");
        Self { files: origins.join(" ").into() }
    }

    /// The header for a page served to `host` (the request's `Host`, when it is
    /// a plain host name or address: anything else is left out).
    fn header(&self, host: Option<&str>) -> HeaderValue {
        let socket = host
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
            })
            .map(|h| format!(" ws://{h} wss://{h}"))
            .unwrap_or_default();
        let files = if self.files.is_empty() { String::new() } else { format!(" {}", self.files) };
        let policy = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:{files}; \
             media-src 'self' blob:{files}; connect-src 'self'{socket}{files}; manifest-src 'self'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'self'"))
    }
}

/// `GET /demo` (a redirect to `/demo/`), `/demo/` and `/demo/<file>`.
pub fn router(csp: Csp) -> Router {
    let mut router = Router::new().route(
        PREFIX,
        get(|| async { (StatusCode::PERMANENT_REDIRECT, [(LOCATION, "/demo/")]).into_response() }),
    );
    for (index, asset) in ASSETS.iter().enumerate() {
        let handler = {
            let csp = csp.clone();
            move |headers: HeaderMap| async move { serve(index, &csp, &headers) }
        };
        if asset.name == "index.html" {
            router = router.route(&format!("{PREFIX}/"), get(handler.clone()));
        }
        router = router.route(&format!("{PREFIX}/{}", asset.name), get(handler));
    }
    router
}

fn serve(index: usize, csp: &Csp, request: &HeaderMap) -> Response {
    let (Some(asset), Some(etag)) = (ASSETS.get(index), ETAGS.get(index)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(ETAG, etag.clone());
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let host = request.get(HOST).and_then(|h| h.to_str().ok());
    headers.insert(CONTENT_SECURITY_POLICY, csp.header(host));
    let fresh = request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim().trim_start_matches("W/") == etag.to_str().unwrap_or_default());
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    (headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_origin_is_added_only_for_a_plain_host() {
        let csp = Csp { files: "".into() };
        let ok = csp.header(Some("127.0.0.1:8080"));
        assert!(
            ok.to_str()
                .unwrap_or_default()
                .contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080")
        );
        let odd = csp.header(Some("evil; script-src *"));
        assert!(!odd.to_str().unwrap_or_default().contains("evil"));
        assert!(odd.to_str().unwrap_or_default().contains("script-src 'self';"));
    }

    #[test]
    fn every_asset_has_an_etag() {
        assert_eq!(ETAGS.len(), ASSETS.len());
        let names: std::collections::HashSet<_> = ASSETS.iter().map(|a| a.name).collect();
        assert_eq!(names.len(), ASSETS.len(), "one route per name");
    }
}
