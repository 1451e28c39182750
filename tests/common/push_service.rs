//! A fake push provider on loopback, for the push senders' tests: Google's
//! OAuth token endpoint and FCM's HTTP v1 send API, and Web Push endpoints
//! that check VAPID and decrypt what they get (RFC 8291, done here on
//! RustCrypto primitives, not by the sender's crate), recording it all.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes128Gcm, KeyInit as _, Nonce};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hkdf::Hkdf;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use weft::notify::push::PushConfig;

/// The fake Firebase project.
pub const PROJECT: &str = "weft-push-test";
/// The fake service account.
pub const CLIENT_EMAIL: &str = "push@weft-push-test.iam.gserviceaccount.com";
/// The scope the assertion must ask for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The service account's key (tests/fixtures/push/README.md).
pub const SERVICE_KEY: &str = include_str!("../fixtures/push/service-account.pem");
const SERVICE_PUBLIC_KEY: &str = include_str!("../fixtures/push/service-account.pub.pem");

/// How the fake fails a request, instead of answering it.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    /// 503 (FCM's `UNAVAILABLE`).
    Unavailable,
    /// 429 with `Retry-After: <secs>` (FCM's `QUOTA_EXCEEDED`).
    RateLimited(u64),
    /// This status, with no useful body.
    Status(u16),
    /// Waits this long, then 503 (longer than the sender's timeout: a timeout).
    Stall(Duration),
}

/// One message FCM accepted.
#[derive(Clone, Debug)]
pub struct FcmMessage {
    /// The project in the URL.
    pub project: String,
    /// `message.token`.
    pub token: String,
    /// `message.notification.title`.
    pub title: String,
    /// `message.notification.body`.
    pub body: String,
    /// `message.data`.
    pub data: BTreeMap<String, String>,
    /// `message.android.collapse_key`.
    pub collapse_key: Option<String>,
    /// The whole request body.
    pub raw: Value,
}

/// One Web Push message a subscription got, decrypted.
#[derive(Clone, Debug)]
pub struct WebPushReceived {
    /// The subscription (`/wp/<id>`).
    pub id: String,
    /// The decrypted payload.
    pub plaintext: Vec<u8>,
    /// `TTL`.
    pub ttl: u32,
    /// `Urgency`.
    pub urgency: Option<String>,
    /// `Topic`.
    pub topic: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: String,
    /// The VAPID token's `sub`.
    pub vapid_subject: String,
    /// The VAPID token's `exp` less the time it arrived, in seconds.
    pub vapid_valid_for: i64,
    /// The VAPID `k`.
    pub vapid_key: String,
}

struct Subscription {
    secret: p256::SecretKey,
    auth: [u8; 16],
    /// The `applicationServerKey` it was made with: pushes signed by another key are refused (403).
    server_key: Option<String>,
}

#[derive(Default)]
struct Inner {
    grants: usize,
    issued: HashSet<String>,
    expires_in: u64,
    unregistered: HashSet<String>,
    invalid: HashSet<String>,
    token_failures: VecDeque<Failure>,
    fcm_failures: VecDeque<Failure>,
    webpush_failures: VecDeque<Failure>,
    fcm_calls: usize,
    fcm: Vec<FcmMessage>,
    subscriptions: HashMap<String, Subscription>,
    gone: HashSet<String>,
    webpush_calls: usize,
    webpush: Vec<WebPushReceived>,
    refusals: Vec<String>,
}

struct Shared {
    origin: String,
    rsa: DecodingKey,
    inner: Mutex<Inner>,
}

/// The fake: `config()` for the senders, knobs to script it, and what it recorded.
#[derive(Clone)]
pub struct PushService {
    /// `http://127.0.0.1:port`.
    pub origin: String,
    shared: Arc<Shared>,
}

impl PushService {
    /// Starts the fake on 127.0.0.1 (a random port).
    pub async fn start() -> PushService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            origin: origin.clone(),
            rsa: DecodingKey::from_rsa_pem(SERVICE_PUBLIC_KEY.as_bytes()).unwrap(),
            inner: Mutex::new(Inner { expires_in: 3599, ..Inner::default() }),
        });
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/v1/projects/{project}/messages:send", axum::routing::post(fcm_send))
            .route("/wp/{id}", axum::routing::post(webpush))
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move { axum::serve(listener, app).await });
        PushService { origin, shared }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }

    /// The service account's JSON key, its `token_uri` pointing here.
    pub fn service_account(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "fake-key-1",
            "private_key": SERVICE_KEY,
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.origin),
        })
        .to_string()
    }

    /// Settings that send FCM and Web Push here (a fresh VAPID key).
    pub fn config(&self) -> PushConfig {
        PushConfig {
            fcm_credentials: self.service_account(),
            fcm_base_url: self.origin.clone(),
            vapid_private_key: vapid_key(),
            vapid_subject: "mailto:ops@weft.example".into(),
            allow_http: true,
            allow_private: true,
            timeout_ms: 2_000,
            ttl_secs: 3_600,
        }
    }

    /// A browser's subscription to `/wp/<id>` here (fresh keys), bound to
    /// `application_server_key` like `pushManager.subscribe` binds it.
    pub fn subscribe(&self, id: &str, application_server_key: Option<&str>) -> String {
        let secret = random_secret();
        let auth: [u8; 16] = rand::random();
        let p256dh = b64().encode(secret.public_key().to_encoded_point(false).as_bytes());
        let subscription = json!({
            "endpoint": format!("{}/wp/{id}", self.origin),
            "expirationTime": null,
            "keys": {"p256dh": p256dh, "auth": b64().encode(auth)},
        });
        let server_key = application_server_key.map(str::to_owned);
        self.inner().subscriptions.insert(id.to_owned(), Subscription { secret, auth, server_key });
        subscription.to_string()
    }

    /// FCM answers UNREGISTERED (404) for this token.
    pub fn unregister(&self, token: &str) {
        self.inner().unregistered.insert(token.to_owned());
    }

    /// FCM answers "not a valid FCM registration token" (400) for this token.
    pub fn invalidate(&self, token: &str) {
        self.inner().invalid.insert(token.to_owned());
    }

    /// The subscription `/wp/<id>` answers 410 Gone.
    pub fn gone(&self, id: &str) {
        self.inner().gone.insert(id.to_owned());
    }

    /// The next requests to the token endpoint fail so.
    pub fn fail_token(&self, failures: &[Failure]) {
        self.inner().token_failures.extend(failures);
    }

    /// The next FCM sends fail so.
    pub fn fail_fcm(&self, failures: &[Failure]) {
        self.inner().fcm_failures.extend(failures);
    }

    /// The next Web Push requests fail so.
    pub fn fail_webpush(&self, failures: &[Failure]) {
        self.inner().webpush_failures.extend(failures);
    }

    /// Access tokens granted from now on say they expire in this many seconds.
    pub fn token_lifetime(&self, secs: u64) {
        self.inner().expires_in = secs;
    }

    /// Revokes every access token granted so far (FCM answers 401 to them).
    pub fn revoke_tokens(&self) {
        self.inner().issued.clear();
    }

    /// How many access tokens were granted.
    pub fn grants(&self) -> usize {
        self.inner().grants
    }

    /// How many FCM sends arrived (answered or not).
    pub fn fcm_calls(&self) -> usize {
        self.inner().fcm_calls
    }

    /// The FCM messages accepted, in order.
    pub fn fcm_messages(&self) -> Vec<FcmMessage> {
        self.inner().fcm.clone()
    }

    /// How many Web Push requests arrived (answered or not).
    pub fn webpush_calls(&self) -> usize {
        self.inner().webpush_calls
    }

    /// The Web Push messages accepted and decrypted, in order.
    pub fn webpushes(&self) -> Vec<WebPushReceived> {
        self.inner().webpush.clone()
    }

    /// Why the fake refused requests the senders should have made right
    /// (a bad assertion or VAPID token, a malformed body): empty when all is well.
    pub fn refusals(&self) -> Vec<String> {
        self.inner().refusals.clone()
    }
}

/// A fresh VAPID private key, as `vapid_private_key` takes it.
pub fn vapid_key() -> String {
    b64().encode(random_secret().to_bytes())
}

fn random_secret() -> p256::SecretKey {
    loop {
        if let Ok(secret) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            return secret;
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Google's error body (google.rpc.Status) with an FcmError detail.
fn fcm_error(status: StatusCode, name: &str, message: &str, error_code: Option<&str>) -> Response {
    let mut error = json!({"code": status.as_u16(), "message": message, "status": name});
    if let Some(code) = error_code {
        error["details"] =
            json!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]);
    }
    (status, axum::Json(json!({"error": error}))).into_response()
}

async fn fail(failure: Failure) -> Response {
    match failure {
        Failure::Unavailable => fcm_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            Some("UNAVAILABLE"),
        ),
        Failure::RateLimited(secs) => {
            let mut response = fcm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded.",
                Some("QUOTA_EXCEEDED"),
            );
            response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            response
        }
        Failure::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Failure::Stall(wait) => {
            tokio::time::sleep(wait).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn refuse(shared: &Shared, status: StatusCode, why: String) -> Response {
    shared.inner.lock().unwrap().refusals.push(why.clone());
    (status, why).into_response()
}

#[derive(Deserialize)]
struct AssertionClaims {
    scope: String,
    iat: i64,
    exp: i64,
}

/// The OAuth token endpoint: checks the JWT bearer grant, grants a token.
async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let failure = shared.inner.lock().unwrap().token_failures.pop_front();
    if let Some(failure) = failure {
        return fail(failure).await;
    }
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => return refuse(&shared, StatusCode::BAD_REQUEST, format!("token: not a form: {e}")),
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            format!("token: grant_type {:?}", form.get("grant_type")),
        );
    }
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[CLIENT_EMAIL]);
    validation.set_audience(&[format!("{}/token", shared.origin)]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "iat"]);
    let claims = match jsonwebtoken::decode::<AssertionClaims>(&assertion, &shared.rsa, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            shared.inner.lock().unwrap().refusals.push(format!("token: assertion refused: {e}"));
            let body = json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    if claims.scope != SCOPE {
        return refuse(&shared, StatusCode::BAD_REQUEST, format!("token: scope {:?}", claims.scope));
    }
    if claims.exp - claims.iat != 3600 || (claims.iat - now()).abs() > 300 {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            format!("token: iat {} exp {}", claims.iat, claims.exp),
        );
    }
    let mut inner = shared.inner.lock().unwrap();
    inner.grants += 1;
    let access = format!("ya29.fake-{}-{}", inner.grants, b64().encode(rand::random::<[u8; 12]>()));
    inner.issued.insert(access.clone());
    let body = json!({"access_token": access, "expires_in": inner.expires_in, "token_type": "Bearer"});
    axum::Json(body).into_response()
}

/// FCM's `messages:send`.
async fn fcm_send(
    State(shared): State<Arc<Shared>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failure = {
        let mut inner = shared.inner.lock().unwrap();
        inner.fcm_calls += 1;
        inner.fcm_failures.pop_front()
    };
    if let Some(failure) = failure {
        return fail(failure).await;
    }
    let bearer =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let known = bearer.is_some_and(|b| shared.inner.lock().unwrap().issued.contains(b));
    if !known {
        return fcm_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            None,
        );
    }
    if project != PROJECT {
        return fcm_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Requested entity was not found.", None);
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return refuse(&shared, StatusCode::BAD_REQUEST, "fcm: content-type is not application/json".into());
    }
    let raw: Value = match serde_json::from_slice(&body) {
        Ok(raw) => raw,
        Err(e) => return refuse(&shared, StatusCode::BAD_REQUEST, format!("fcm: not JSON: {e}")),
    };
    let message = match check_message(&raw) {
        Ok(message) => FcmMessage { project, ..message },
        Err((field, why)) => {
            // A reserved data key is FCM's to refuse; the rest is the sender's mistake.
            if !field.starts_with("message.data") {
                shared.inner.lock().unwrap().refusals.push(format!("fcm: {field}: {why}"));
            }
            let body = json!({"error": {"code": 400, "message": format!("Invalid value at '{field}'"), "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field, "description": why}]}]}});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let mut inner = shared.inner.lock().unwrap();
    if inner.unregistered.contains(&message.token) {
        return fcm_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Requested entity was not found.",
            Some("UNREGISTERED"),
        );
    }
    if inner.invalid.contains(&message.token) {
        return fcm_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            Some("INVALID_ARGUMENT"),
        );
    }
    let n = inner.fcm.len();
    inner.fcm.push(message);
    axum::Json(json!({"name": format!("projects/{PROJECT}/messages/0:{n}%fake")})).into_response()
}

/// Checks the body against FCM v1's `Message` (the parts the sender uses);
/// the error names the field.
fn check_message(raw: &Value) -> Result<FcmMessage, (String, String)> {
    let err = |field: &str, why: &str| (field.to_owned(), why.to_owned());
    let root = raw.as_object().filter(|o| o.len() == 1).ok_or_else(|| err("", "want {\"message\": ...}"))?;
    let message = root.get("message").and_then(Value::as_object).ok_or_else(|| err("message", "missing"))?;
    for key in message.keys() {
        if !["token", "notification", "data", "android", "apns", "webpush"].contains(&key.as_str()) {
            return Err(err(&format!("message.{key}"), "unexpected"));
        }
    }
    let token =
        message.get("token").and_then(Value::as_str).ok_or_else(|| err("message.token", "missing"))?;
    let notification = message
        .get("notification")
        .and_then(Value::as_object)
        .ok_or_else(|| err("message.notification", "missing"))?;
    let text = |key: &str| {
        notification
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| err(&format!("message.notification.{key}"), "not a string"))
    };
    let (title, body) = (text("title")?, text("body")?);
    if notification.len() != 2 {
        return Err(err("message.notification", "unexpected members"));
    }
    let mut data = BTreeMap::new();
    if let Some(map) = message.get("data") {
        let map = map.as_object().ok_or_else(|| err("message.data", "not a map"))?;
        for (key, value) in map {
            let value =
                value.as_str().ok_or_else(|| err(&format!("message.data[{key}].value"), "not a string"))?;
            if key == "from" || key == "message_type" || key.starts_with("google") || key.starts_with("gcm") {
                return Err(err(&format!("message.data[{key}].key"), "reserved"));
            }
            data.insert(key.clone(), value.to_owned());
        }
    }
    let mut collapse_key = None;
    if let Some(android) = message.get("android") {
        let android = android.as_object().ok_or_else(|| err("message.android", "not an object"))?;
        for (key, value) in android {
            match key.as_str() {
                "collapse_key" => {
                    collapse_key = Some(
                        value
                            .as_str()
                            .ok_or_else(|| err("message.android.collapse_key", "not a string"))?
                            .to_owned(),
                    )
                }
                "ttl" => {
                    let ok = value
                        .as_str()
                        .and_then(|t| t.strip_suffix('s'))
                        .is_some_and(|n| n.parse::<f64>().is_ok());
                    if !ok {
                        return Err(err("message.android.ttl", "not a duration like \"3.5s\""));
                    }
                }
                _ => return Err(err(&format!("message.android.{key}"), "unexpected")),
            }
        }
    }
    for platform in ["apns", "webpush"] {
        if let Some(config) = message.get(platform) {
            let config =
                config.as_object().ok_or_else(|| err(&format!("message.{platform}"), "not an object"))?;
            for (key, value) in config {
                if key != "headers" {
                    return Err(err(&format!("message.{platform}.{key}"), "unexpected"));
                }
                let headers = value
                    .as_object()
                    .ok_or_else(|| err(&format!("message.{platform}.headers"), "not a map"))?;
                if headers.values().any(|v| !v.is_string()) {
                    return Err(err(&format!("message.{platform}.headers"), "values must be strings"));
                }
            }
        }
    }
    Ok(FcmMessage {
        project: String::new(),
        token: token.to_owned(),
        title,
        body,
        data,
        collapse_key,
        raw: raw.clone(),
    })
}

#[derive(Deserialize)]
struct VapidClaims {
    exp: i64,
    sub: String,
}

/// A Web Push endpoint (RFC 8030 §5): checks VAPID and the headers, decrypts.
async fn webpush(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failure = {
        let mut inner = shared.inner.lock().unwrap();
        inner.webpush_calls += 1;
        inner.webpush_failures.pop_front()
    };
    if let Some(failure) = failure {
        return fail(failure).await;
    }
    let (secret, auth, server_key) = {
        let inner = shared.inner.lock().unwrap();
        if inner.gone.contains(&id) {
            return StatusCode::GONE.into_response();
        }
        match inner.subscriptions.get(&id) {
            Some(s) => (s.secret.clone(), s.auth, s.server_key.clone()),
            None => return StatusCode::NOT_FOUND.into_response(),
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);

    // VAPID (RFC 8292 §3): `vapid t=<jwt>, k=<key>`.
    let Some(authorization) = header("authorization") else {
        return refuse(&shared, StatusCode::UNAUTHORIZED, "webpush: no Authorization".into());
    };
    let Some(params) = authorization.strip_prefix("vapid ") else {
        return refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            format!("webpush: not a vapid scheme: {authorization}"),
        );
    };
    let params: HashMap<&str, &str> = params.split(',').filter_map(|p| p.trim().split_once('=')).collect();
    let (Some(t), Some(k)) = (params.get("t"), params.get("k")) else {
        return refuse(&shared, StatusCode::UNAUTHORIZED, "webpush: vapid without t or k".into());
    };
    let key = match b64().decode(k) {
        Ok(key) if key.len() == 65 && key[0] == 4 => key,
        _ => {
            return refuse(
                &shared,
                StatusCode::UNAUTHORIZED,
                "webpush: k is not an uncompressed P-256 point".into(),
            );
        }
    };
    if server_key.as_deref().is_some_and(|bound| bound != *k) {
        // As push services do: the subscription belongs to another server key.
        return StatusCode::FORBIDDEN.into_response();
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[shared.origin.as_str()]);
    validation.set_required_spec_claims(&["aud", "exp", "sub"]);
    let claims = match jsonwebtoken::decode::<VapidClaims>(t, &DecodingKey::from_ec_der(&key), &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return refuse(&shared, StatusCode::UNAUTHORIZED, format!("webpush: VAPID token refused: {e}"));
        }
    };
    let valid_for = claims.exp - now();
    if valid_for > 24 * 3600 {
        return refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            format!("webpush: VAPID exp {valid_for}s away, over 24 h"),
        );
    }
    if !(claims.sub.starts_with("mailto:") || claims.sub.starts_with("https:")) {
        return refuse(&shared, StatusCode::UNAUTHORIZED, format!("webpush: VAPID sub {:?}", claims.sub));
    }

    // The request's other headers (RFC 8030 §5.2–5.4, RFC 8188 §2).
    let content_encoding = header("content-encoding").unwrap_or_default();
    if content_encoding != "aes128gcm" {
        return refuse(
            &shared,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("webpush: Content-Encoding {content_encoding:?}"),
        );
    }
    let Some(ttl) = header("ttl").and_then(|t| t.parse::<u32>().ok()) else {
        return refuse(&shared, StatusCode::BAD_REQUEST, "webpush: no TTL".into());
    };
    let urgency = header("urgency");
    if urgency.as_deref().is_some_and(|u| !["very-low", "low", "normal", "high"].contains(&u)) {
        return refuse(&shared, StatusCode::BAD_REQUEST, format!("webpush: Urgency {urgency:?}"));
    }
    let topic = header("topic");
    let topic_ok =
        |t: &str| t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if topic.as_deref().is_some_and(|t| !topic_ok(t)) {
        return refuse(&shared, StatusCode::BAD_REQUEST, format!("webpush: Topic {topic:?}"));
    }
    if body.len() > 4096 {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let plaintext = match decrypt(&body, &secret, &auth) {
        Ok(plaintext) => plaintext,
        Err(e) => return refuse(&shared, StatusCode::BAD_REQUEST, format!("webpush: cannot decrypt: {e}")),
    };
    shared.inner.lock().unwrap().webpush.push(WebPushReceived {
        id: id.clone(),
        plaintext,
        ttl,
        urgency,
        topic,
        content_encoding,
        vapid_subject: claims.sub,
        vapid_valid_for: valid_for,
        vapid_key: (*k).to_owned(),
    });
    (StatusCode::CREATED, [("location", format!("{}/msg/{id}", shared.origin))]).into_response()
}

/// Decrypts a Web Push body as the browser does: RFC 8291 (the key from
/// ECDH and the auth secret) over RFC 8188 `aes128gcm` (records of `rs`
/// bytes, each sealed with AES-128-GCM and padded after a delimiter).
pub fn decrypt(body: &[u8], ua_secret: &p256::SecretKey, auth: &[u8; 16]) -> Result<Vec<u8>, String> {
    // The header (RFC 8188 §2.1): salt (16) | rs (4, big-endian) | idlen (1) | keyid.
    if body.len() < 21 {
        return Err("shorter than the header".into());
    }
    let salt = &body[..16];
    let rs = u32::from_be_bytes(body[16..20].try_into().unwrap()) as usize;
    let idlen = usize::from(body[20]);
    if rs < 18 {
        return Err(format!("record size {rs} under 18"));
    }
    // RFC 8291 §4: the keyid is the sender's ephemeral public key, uncompressed.
    if idlen != 65 || body.len() < 21 + idlen {
        return Err(format!("keyid of {idlen} bytes, not a P-256 point"));
    }
    let as_public =
        p256::PublicKey::from_sec1_bytes(&body[21..21 + idlen]).map_err(|_| "keyid is not a P-256 point")?;
    let records = &body[21 + idlen..];

    // RFC 8291 §3.3–3.4: ecdh_secret, then IKM = HKDF(auth, ecdh_secret, "WebPush: info" 0 ua_public as_public, 32).
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
    let ua_public = ua_secret.public_key().to_encoded_point(false);
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public.to_encoded_point(false).as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes()).expand(&key_info, &mut ikm).unwrap();

    // RFC 8188 §2.2–2.3: PRK = HKDF-Extract(salt, IKM); CEK and the nonce base from it.
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).unwrap();
    let mut nonce_base = [0u8; 12];
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce_base).unwrap();
    let cipher = Aes128Gcm::new(&cek.into());

    if records.is_empty() {
        return Err("no records".into());
    }
    let chunks: Vec<&[u8]> = records.chunks(rs).collect();
    let mut plaintext = Vec::new();
    for (seq, record) in chunks.iter().enumerate() {
        // The record's nonce: the base XOR its sequence number (big-endian, 96 bits).
        let mut nonce = nonce_base;
        for (i, b) in (seq as u64).to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= b;
        }
        let mut padded = cipher
            .decrypt(&Nonce::from(nonce), *record)
            .map_err(|_| format!("record {seq} does not authenticate"))?;
        // Padding: zeros after a delimiter, 2 on the last record, 1 before.
        while padded.last() == Some(&0) {
            padded.pop();
        }
        let last = seq + 1 == chunks.len();
        match padded.pop() {
            Some(2) if last => {}
            Some(1) if !last => {}
            other => return Err(format!("record {seq}: delimiter {other:?}")),
        }
        plaintext.extend_from_slice(&padded);
    }
    Ok(plaintext)
}
