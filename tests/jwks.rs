//! `JwksVerifier` against a real JWKS server on a `:0` port, with tokens
//! signed by the test keys in `tests/fixtures/jwks/`; what a node refuses
//! (non-public JWKS URLs, tokens not yet valid) at its REST and WebSocket edges.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use weft::auth::jwks::FetchError;
use weft::auth::{JwksConfig, JwksVerifier, TokenError};
use weft::ids::{AppId, UserId};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwks/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture(name)).unwrap()
}

fn ec_key(name: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture(name)).unwrap()
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Claims for `sub` of `app`, expiring in an hour.
fn claims(app: &AppId, sub: &str) -> Value {
    json!({ "sub": sub, "app": app.as_str(), "iat": now(), "exp": now() + 3600 })
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rs256(kid: &str, claims: &Value) -> String {
    sign(Algorithm::RS256, Some(kid), &rsa_key("rsa-1.pem"), claims)
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

/// The test identity providers serve http:// on 127.0.0.1: both are allowed.
fn local() -> JwksConfig {
    JwksConfig { allow_http: true, allow_private_networks: true, ..JwksConfig::default() }
}

fn config(min_refetch_secs: u64) -> JwksConfig {
    JwksConfig { min_refetch_secs, ..local() }
}

/// A test identity provider serving a JWKS document, counting requests.
struct Idp {
    url: String,
    state: Arc<IdpState>,
}

struct IdpState {
    hits: AtomicUsize,
    answer: Mutex<(StatusCode, Value)>,
    delay: Duration,
}

impl Idp {
    async fn start(jwks: Value) -> Self {
        Self::start_with_delay(jwks, Duration::ZERO).await
    }

    /// An IdP that takes `delay` to answer, so concurrent verifications overlap.
    async fn start_with_delay(jwks: Value, delay: Duration) -> Self {
        let state = Arc::new(IdpState {
            hits: AtomicUsize::new(0),
            answer: Mutex::new((StatusCode::OK, jwks)),
            delay,
        });
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn answer(&self, status: StatusCode, body: Value) {
        *self.state.answer.lock().unwrap() = (status, body);
    }
}

async fn serve_jwks(State(state): State<Arc<IdpState>>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(state.delay).await;
    let (status, body) = state.answer.lock().unwrap().clone();
    (status, Json(body)).into_response()
}

/// The fixture set (`rsa-1`, `ec-1`) with `rsa-2` rotated in.
fn rotated_jwks() -> Value {
    let mut jwks = fixture_json("jwks.json");
    jwks["keys"].as_array_mut().unwrap().push(fixture_json("rsa-2.jwk.json"));
    jwks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_verify() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();

    let token = rs256("rsa-1", &claims(&app, "alice"));
    assert_eq!(verifier.verify(&idp.url, &token, &app).await.unwrap(), user("alice"));
    let token = sign(Algorithm::ES256, Some("ec-1"), &ec_key("ec-1.pem"), &claims(&app, "bob"));
    assert_eq!(verifier.verify(&idp.url, &token, &app).await.unwrap(), user("bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_set_is_not_fetched_again() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    for sub in ["a", "b", "c"] {
        let token = rs256("rsa-1", &claims(&app, sub));
        assert_eq!(verifier.verify(&idp.url, &token, &app).await.unwrap(), user(sub));
    }
    // A clone shares the cache.
    let token = sign(Algorithm::ES256, Some("ec-1"), &ec_key("ec-1.pem"), &claims(&app, "d"));
    assert_eq!(verifier.clone().verify(&idp.url, &token, &app).await.unwrap(), user("d"));
    assert_eq!(idp.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_share_one_fetch() {
    let idp = Idp::start_with_delay(fixture_json("jwks.json"), Duration::from_millis(200)).await;
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    let token = rs256("rsa-1", &claims(&app, "alice"));
    let verifications = (0..16).map(|_| verifier.verify(&idp.url, &token, &app));
    for result in futures::future::join_all(verifications).await {
        assert_eq!(result.unwrap(), user("alice"));
    }
    assert_eq!(idp.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_kid_uses_the_only_key() {
    let mut jwks = fixture_json("jwks.json");
    jwks["keys"].as_array_mut().unwrap().truncate(1);
    let idp = Idp::start(jwks).await;
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    let token = sign(Algorithm::RS256, None, &rsa_key("rsa-1.pem"), &claims(&app, "alice"));
    assert_eq!(verifier.verify(&idp.url, &token, &app).await.unwrap(), user("alice"));

    // With two keys in the set, a kid-less token matches none.
    let two = Idp::start(fixture_json("jwks.json")).await;
    assert!(matches!(verifier.verify(&two.url, &token, &app).await, Err(TokenError::UnknownKey)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_for_another_application_are_refused() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(local());
    let (app, other) = (AppId::generate(), AppId::generate());
    let check = async |claims: Value| verifier.verify(&idp.url, &rs256("rsa-1", &claims), &app).await;
    let exp = now() + 3600;

    let wrong_app = json!({ "sub": "alice", "app": other.as_str(), "exp": exp });
    assert!(matches!(check(wrong_app).await, Err(TokenError::WrongApplication)));
    let wrong_aud = json!({ "sub": "alice", "aud": other.as_str(), "exp": exp });
    assert!(matches!(check(wrong_aud).await, Err(TokenError::WrongApplication)));
    let wrong_auds = json!({ "sub": "alice", "aud": [other.as_str(), "weft"], "exp": exp });
    assert!(matches!(check(wrong_auds).await, Err(TokenError::WrongApplication)));
    let neither = json!({ "sub": "alice", "exp": exp });
    assert!(matches!(check(neither).await, Err(TokenError::WrongApplication)));
    // `app` is read first; `aud` only without it.
    let app_wins = json!({ "sub": "alice", "app": other.as_str(), "aud": app.as_str(), "exp": exp });
    assert!(matches!(check(app_wins).await, Err(TokenError::WrongApplication)));

    let aud = json!({ "sub": "alice", "aud": app.as_str(), "exp": exp });
    assert_eq!(check(aud).await.unwrap(), user("alice"));
    let auds = json!({ "sub": "alice", "aud": [other.as_str(), app.as_str()], "exp": exp });
    assert_eq!(check(auds).await.unwrap(), user("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_malformed_claims_are_refused() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    let check = async |claims: Value| verifier.verify(&idp.url, &rs256("rsa-1", &claims), &app).await;
    let app_id = app.as_str();

    let expired = json!({ "sub": "alice", "app": app_id, "exp": now() - 60 });
    assert!(matches!(check(expired).await, Err(TokenError::Expired)));
    // Within the 5 s leeway.
    let just_expired = json!({ "sub": "alice", "app": app_id, "exp": now() - 2 });
    assert_eq!(check(just_expired).await.unwrap(), user("alice"));
    let no_exp = json!({ "sub": "alice", "app": app_id });
    assert!(matches!(check(no_exp).await, Err(TokenError::Invalid(_))));
    let not_yet = json!({ "sub": "alice", "app": app_id, "exp": now() + 3600, "nbf": now() + 600 });
    assert!(matches!(check(not_yet).await, Err(TokenError::Invalid(_))));
    let no_sub = json!({ "app": app_id, "exp": now() + 60 });
    assert!(matches!(check(no_sub).await, Err(TokenError::Invalid(_))));
    let bad_sub = json!({ "sub": "not a user id!", "app": app_id, "exp": now() + 60 });
    assert!(matches!(check(bad_sub).await, Err(TokenError::BadSubject)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signatures_and_mismatched_algorithms_are_refused() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    let claims = claims(&app, "alice");

    // Another key claiming the known kid.
    let forged = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key("rsa-2.pem"), &claims);
    assert!(matches!(verifier.verify(&idp.url, &forged, &app).await, Err(TokenError::Invalid(_))));
    // A valid token with its signature swapped for another token's.
    let good = rs256("rsa-1", &claims);
    let other = rs256("rsa-1", &json!({ "sub": "mallory", "app": app.as_str(), "exp": now() + 60 }));
    let (body, _) = good.rsplit_once('.').unwrap();
    let (_, signature) = other.rsplit_once('.').unwrap();
    let spliced = format!("{body}.{signature}");
    assert!(matches!(verifier.verify(&idp.url, &spliced, &app).await, Err(TokenError::Invalid(_))));
    // The EC key's kid on an RS256 token, and the RSA key's kid on an ES256 one.
    let wrong_kty = sign(Algorithm::RS256, Some("ec-1"), &rsa_key("rsa-1.pem"), &claims);
    assert!(matches!(verifier.verify(&idp.url, &wrong_kty, &app).await, Err(TokenError::Invalid(_))));
    let wrong_kty = sign(Algorithm::ES256, Some("rsa-1"), &ec_key("ec-1.pem"), &claims);
    assert!(matches!(verifier.verify(&idp.url, &wrong_kty, &app).await, Err(TokenError::Invalid(_))));
    assert_eq!(verifier.verify(&idp.url, &good, &app).await.unwrap(), user("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_and_unsigned_tokens_are_refused_without_a_fetch() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    let claims = claims(&app, "alice");

    // The classic confusion: the public key (known to all) as an HMAC secret.
    let public_n = fixture_json("jwks.json")["keys"][0]["n"].as_str().unwrap().to_owned();
    let hs256 =
        sign(Algorithm::HS256, Some("rsa-1"), &EncodingKey::from_secret(public_n.as_bytes()), &claims);
    assert!(matches!(verifier.verify(&idp.url, &hs256, &app).await, Err(TokenError::Invalid(_))));
    let other_alg = sign(Algorithm::RS384, Some("rsa-1"), &rsa_key("rsa-1.pem"), &claims);
    assert!(matches!(verifier.verify(&idp.url, &other_alg, &app).await, Err(TokenError::Invalid(_))));

    let signed = rs256("rsa-1", &claims);
    let payload = signed.split('.').nth(1).unwrap();
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIiwia2lkIjoicnNhLTEifQ"; // {"alg":"none","typ":"JWT","kid":"rsa-1"}
    let unsigned = format!("{none_header}.{payload}.");
    assert!(matches!(verifier.verify(&idp.url, &unsigned, &app).await, Err(TokenError::Invalid(_))));
    assert!(matches!(verifier.verify(&idp.url, "not a jwt", &app).await, Err(TokenError::Invalid(_))));
    assert_eq!(idp.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refetch_once_per_window() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(config(1));
    let app = AppId::generate();
    // Signed up front (and with the faster EC key): signing in a debug build is slow next to a 1 s window.
    let (ec, mallory) = (ec_key("ec-1.pem"), claims(&app, "mallory"));
    let forged: Vec<String> =
        (0..50).map(|i| sign(Algorithm::ES256, Some(&format!("forged-{i}")), &ec, &mallory)).collect();
    assert!(verifier.verify(&idp.url, &rs256("rsa-1", &claims(&app, "alice")), &app).await.is_ok());
    assert_eq!(idp.hits(), 1);

    // Once the window since that fetch has passed, an unknown kid refetches…
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.hits() < 2 {
        assert!(Instant::now() < deadline, "an unknown kid never triggered a refetch");
        assert!(matches!(verifier.verify(&idp.url, &forged[0], &app).await, Err(TokenError::UnknownKey)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …and a flood of them within the next window is answered from the cache.
    for token in &forged {
        assert!(matches!(verifier.verify(&idp.url, token, &app).await, Err(TokenError::UnknownKey)));
    }
    assert_eq!(idp.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_accepted_after_the_refetch() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(config(1));
    let app = AppId::generate();
    let rotated = sign(Algorithm::RS256, Some("rsa-2"), &rsa_key("rsa-2.pem"), &claims(&app, "bob"));
    assert!(matches!(verifier.verify(&idp.url, &rotated, &app).await, Err(TokenError::UnknownKey)));
    assert_eq!(idp.hits(), 1);

    idp.answer(StatusCode::OK, rotated_jwks());
    // Refused until the window passes, then accepted after exactly one more fetch.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match verifier.verify(&idp.url, &rotated, &app).await {
            Ok(user_id) => break assert_eq!(user_id, user("bob")),
            Err(TokenError::UnknownKey) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the rotated key was not accepted: {e:?}"),
        }
    }
    assert_eq!(idp.hits(), 2);
    // The old key is still in the set.
    assert!(verifier.verify(&idp.url, &rs256("rsa-1", &claims(&app, "alice")), &app).await.is_ok());
    assert_eq!(idp.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_idp_is_a_clear_error() {
    // Bound then closed: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    let token = rs256("rsa-1", &claims(&app, "alice"));
    let url = format!("http://{closed}/jwks.json");
    let Err(TokenError::KeysUnavailable(e)) = verifier.verify(&url, &token, &app).await else {
        panic!("expected KeysUnavailable");
    };
    assert!(matches!(*e, FetchError::Request(_)), "{e:?}");
    let error = TokenError::KeysUnavailable(e);
    assert_eq!(error.to_string(), "cannot fetch the identity provider's keys");
    assert_eq!(std::error::Error::source(&error).unwrap().to_string(), "the request failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_idp_is_not_retried_within_the_window() {
    let idp = Idp::start(json!({})).await;
    idp.answer(StatusCode::SERVICE_UNAVAILABLE, json!({}));
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    let token = rs256("rsa-1", &claims(&app, "alice"));
    for _ in 0..3 {
        let Err(TokenError::KeysUnavailable(e)) = verifier.verify(&idp.url, &token, &app).await else {
            panic!("expected KeysUnavailable");
        };
        assert!(matches!(*e, FetchError::Status(StatusCode::SERVICE_UNAVAILABLE)), "{e:?}");
    }
    assert_eq!(idp.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refetch_keeps_the_cached_keys() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    // Every verification refetches: the set is never fresh and there is no window.
    let verifier = JwksVerifier::new(JwksConfig { cache_ttl_secs: 0, min_refetch_secs: 0, ..local() });
    let app = AppId::generate();
    let token = rs256("rsa-1", &claims(&app, "alice"));
    assert!(verifier.verify(&idp.url, &token, &app).await.is_ok());

    idp.answer(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
    assert_eq!(verifier.verify(&idp.url, &token, &app).await.unwrap(), user("alice"));
    idp.answer(StatusCode::OK, json!("not a key set"));
    assert_eq!(verifier.verify(&idp.url, &token, &app).await.unwrap(), user("alice"));
    assert_eq!(idp.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_set_is_refused() {
    let mut jwks = fixture_json("jwks.json");
    jwks["padding"] = json!("x".repeat(300 * 1024));
    let idp = Idp::start(jwks).await;
    let verifier = JwksVerifier::new(local());
    let app = AppId::generate();
    let token = rs256("rsa-1", &claims(&app, "alice"));
    let Err(TokenError::KeysUnavailable(e)) = verifier.verify(&idp.url, &token, &app).await else {
        panic!("expected KeysUnavailable");
    };
    assert!(matches!(*e, FetchError::TooLarge), "{e:?}");
}

/// End to end: an application points weft at its identity provider, and its
/// users open WebSockets with RS256 tokens that weft never minted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_with_a_jwks_url_connects_its_users_with_provider_tokens() {
    use common::server::{Mode, TestServer, code};
    use futures::StreamExt as _;

    let idp = Idp::start(fixture_json("jwks.json")).await;
    // A node that only accepts https:// JWKS URLs refuses the local http:// one.
    let strict = TestServer::start(Mode::Embedded).await;
    let token = strict.new_app().await;
    let path = format!("/api/v1/applications/{token}");
    let (status, body) =
        strict.send(strict.http.patch(strict.url(&path)).json(&json!({"jwks_url": idp.url}))).await;
    assert_eq!((status, code(&body)), (422, "invalid_field"), "{body}");
    strict.stop().await;

    // http:// allowed, but 127.0.0.1 is not a public address.
    let no_private = TestServer::start_with(Mode::Embedded, |c| c.jwks.allow_http = true).await;
    let token = no_private.new_app().await;
    let path = format!("/api/v1/applications/{token}");
    let (status, body) = no_private
        .send(no_private.http.patch(no_private.url(&path)).json(&json!({"jwks_url": idp.url})))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_field"), "{body}");
    no_private.stop().await;

    let s = TestServer::start_with(Mode::Embedded, |c| {
        c.jwks.allow_http = true;
        c.jwks.allow_private_networks = true;
    })
    .await;
    let token = s.new_app().await;
    let path = format!("/api/v1/applications/{token}");
    let (status, body) = s.send(s.http.patch(s.url(&path)).json(&json!({"jwks_url": idp.url}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jwks_url"], idp.url.as_str());
    let app = AppId::new(body["id"].as_str().unwrap());

    let ws = |jwt: String| format!("{}/ws?token={jwt}", s.base.replace("http://", "ws://"));
    // The IdP puts weft's application id in `aud`, as providers do.
    let provider_claims = json!({ "sub": "alice", "aud": app.as_str(), "iat": now(), "exp": now() + 600 });
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws(rs256("rsa-1", &provider_claims))).await.unwrap();
    let welcome = socket.next().await.unwrap().unwrap().into_text().unwrap();
    let welcome: Value = serde_json::from_str(&welcome).unwrap();
    assert_eq!((welcome["type"].as_str(), welcome["user"].as_str()), (Some("welcome"), Some("alice")));

    // A key the provider never published, or another application's audience: 401 before the upgrade.
    let forged = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key("rsa-2.pem"), &provider_claims);
    let elsewhere =
        json!({ "sub": "alice", "aud": AppId::generate().as_str(), "iat": now(), "exp": now() + 600 });
    for jwt in [forged, rs256("rsa-1", &elsewhere)] {
        match tokio_tungstenite::connect_async(ws(jwt)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
    }
    // Clearing the URL turns provider tokens off again; weft's own tokens keep working.
    let (status, body) = s.send(s.http.patch(s.url(&path)).json(&json!({"jwks_url": null}))).await;
    assert_eq!((status, &body["jwks_url"]), (200, &Value::Null), "{body}");
    match tokio_tungstenite::connect_async(ws(rs256("rsa-1", &provider_claims))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
    s.stop().await;
}

/// A TCP listener on 127.0.0.1 that counts the connections it accepts (and drops them).
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, accepted)
}

/// With the default config, a JWKS URL naming a loopback address is refused
/// when set, on `PUT` as on `PATCH`, with a message naming the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_jwks_url_is_refused_when_set() {
    use common::server::{Mode, TestServer, code};

    let (port, accepted) = counting_listener().await;
    let s = TestServer::start(Mode::Embedded).await;
    let token = s.new_app().await;
    let path = format!("/api/v1/applications/{token}");
    for url in [
        format!("https://127.0.0.1:{port}/.well-known/jwks.json"),
        format!("https://[::1]:{port}/jwks.json"),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://10.1.2.3/jwks.json".to_owned(),
    ] {
        let (status, body) = s.send(s.http.put(s.url(&path)).json(&json!({"jwks_url": url}))).await;
        assert_eq!((status, code(&body)), (422, "invalid_field"), "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("non-public address") && message.contains("jwks.allow_private_networks"),
            "{message}"
        );
    }
    let (status, body) = s
        .send(s.http.patch(s.url(&path)).json(&json!({"jwks_url": "https://u:p@idp.example/jwks.json"})))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_field"), "{body}");
    let (status, body) = s.get(&path).await;
    assert_eq!((status, &body["jwks_url"]), (200, &Value::Null), "{body}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    s.stop().await;
}

/// A host name is checked when it is resolved, on every fetch: `localhost`
/// resolves to 127.0.0.1, so the token is refused and nothing connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_resolving_to_loopback_is_refused_at_fetch_time() {
    let (port, accepted) = counting_listener().await;
    let url = format!("http://localhost:{port}/.well-known/jwks.json");
    let app = AppId::generate();
    let token = rs256("rsa-1", &claims(&app, "alice"));

    let verifier = JwksVerifier::new(JwksConfig { allow_http: true, ..JwksConfig::default() });
    let Err(TokenError::KeysUnavailable(e)) = verifier.verify(&url, &token, &app).await else {
        panic!("expected KeysUnavailable");
    };
    let FetchError::NonPublic(refused) = &*e else { panic!("expected NonPublic, got {e:?}") };
    assert_eq!(refused.host, "localhost");
    assert!(refused.addr.is_loopback(), "{refused:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    // The same URL with the host allowed does connect (so the count above means something).
    let allowed = JwksVerifier::new(JwksConfig {
        allow_http: true,
        private_hosts: vec!["localhost".into()],
        ..JwksConfig::default()
    });
    let Err(TokenError::KeysUnavailable(e)) = allowed.verify(&url, &token, &app).await else {
        panic!("expected KeysUnavailable");
    };
    assert!(matches!(*e, FetchError::Request(_)), "{e:?}");
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}

/// End to end with the default config: an application whose JWKS URL names a
/// host resolving to loopback gets 503 `identity_provider_unavailable`, and the
/// node never connects there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_never_connects_to_a_jwks_host_resolving_to_loopback() {
    use common::server::{Mode, TestServer, code};

    let (port, accepted) = counting_listener().await;
    let s = TestServer::start(Mode::Embedded).await;
    let (status, body) = s.post("/api/v1/applications", json!({"name": "rebinding"})).await;
    assert_eq!(status, 201, "{body}");
    let (token, app) = (body["token"].as_str().unwrap(), AppId::new(body["id"].as_str().unwrap()));
    let path = format!("/api/v1/applications/{token}");
    let url = format!("https://localhost:{port}/.well-known/jwks.json");
    let (status, body) = s.send(s.http.put(s.url(&path)).json(&json!({"jwks_url": url}))).await;
    assert_eq!(status, 200, "{body}");

    let jwt = rs256("rsa-1", &claims(&app, "alice"));
    let (status, body) = s.send(s.http.get(s.url("/api/v1/me")).bearer_auth(&jwt)).await;
    assert_eq!((status, code(&body)), (503, "identity_provider_unavailable"), "{body}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_holds_at_most_max_key_sets() {
    let idp = Idp::start(fixture_json("jwks.json")).await;
    let verifier = JwksVerifier::new(JwksConfig { max_key_sets: 2, ..local() });
    let app = AppId::generate();
    let token = rs256("rsa-1", &claims(&app, "alice"));
    // Distinct URLs, one server: as many cache entries as URLs, were it unbounded.
    let url = |i: usize| format!("{}?tenant={i}", idp.url);
    for i in 0..8 {
        assert_eq!(verifier.verify(&url(i), &token, &app).await.unwrap(), user("alice"));
        assert!(verifier.cached_key_sets() <= 2, "{} cached after {i}", verifier.cached_key_sets());
    }
    assert_eq!(idp.hits(), 8);
    // The most recent is still cached; the first was evicted and is fetched again.
    assert!(verifier.verify(&url(7), &token, &app).await.is_ok());
    assert_eq!(idp.hits(), 8);
    assert!(verifier.verify(&url(0), &token, &app).await.is_ok());
    assert_eq!(idp.hits(), 9);
}

/// Captures what is logged on this thread (a current-thread runtime runs every task here).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
    }
}

#[tokio::test]
async fn a_failing_url_warns_once_without_its_query_and_counts_every_failure() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let idp = Idp::start(json!({})).await;
    idp.answer(StatusCode::SERVICE_UNAVAILABLE, json!({}));
    // No refetch window: every verification fetches (and fails).
    let verifier = JwksVerifier::new(JwksConfig { min_refetch_secs: 0, ..local() });
    let app = AppId::generate();
    let token = rs256("rsa-1", &claims(&app, "alice"));
    let url = format!("{}?client_secret=hunter2", idp.url);
    let failures = || weft::metrics::metrics().jwks_fetch_failures.get();
    let before = failures();
    for _ in 0..5 {
        assert!(matches!(verifier.verify(&url, &token, &app).await, Err(TokenError::KeysUnavailable(_))));
    }
    assert_eq!(idp.hits(), 5);
    assert!(failures() >= before + 5, "{} failures counted", failures() - before);

    let lines: Vec<String> = log.lines().into_iter().filter(|l| l.contains("cannot fetch jwks")).collect();
    let warnings = lines.iter().filter(|l| l.contains("WARN")).count();
    let debugs = lines.iter().filter(|l| l.contains("DEBUG")).count();
    // The first failure warns, the other four are debug. (The warn line itself
    // may escape a thread-scoped subscriber while other tests of this binary
    // hit the same callsite without one; the budget is unit-tested in src/auth/jwks.rs.)
    assert!(warnings <= 1 && debugs == 4, "{lines:#?}");
    assert!(lines.iter().all(|l| l.contains("host=127.0.0.1") && !l.contains("hunter2")), "{lines:#?}");
}

/// An HS256 token (signed with the application's secret) is refused before
/// its `nbf` just as an RS256 one is: 401 `invalid_token` on REST and on the
/// WebSocket upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_not_yet_valid_are_refused_at_the_edges() {
    use common::server::{Mode, TestServer, code};

    let idp = Idp::start(fixture_json("jwks.json")).await;
    let s = TestServer::start_with(Mode::Embedded, |c| {
        c.jwks.allow_http = true;
        c.jwks.allow_private_networks = true;
    })
    .await;
    let (status, body) = s.post("/api/v1/applications", json!({"name": "nbf"})).await;
    assert_eq!(status, 201, "{body}");
    let (token, app) = (body["token"].as_str().unwrap(), AppId::new(body["id"].as_str().unwrap()));
    let secret = EncodingKey::from_secret(body["secret"].as_str().unwrap().as_bytes());
    let path = format!("/api/v1/applications/{token}");
    let (status, body) = s.send(s.http.patch(s.url(&path)).json(&json!({"jwks_url": idp.url}))).await;
    assert_eq!(status, 200, "{body}");

    let with_nbf = |nbf: i64| {
        let mut claims = claims(&app, "alice");
        claims["nbf"] = json!(nbf);
        claims
    };
    let hs256 = |claims: &Value| sign(Algorithm::HS256, None, &secret, claims);
    let me = async |jwt: &str| s.send(s.http.get(s.url("/api/v1/me")).bearer_auth(jwt)).await;
    let ws = |jwt: &str| format!("{}/ws?token={jwt}", s.ws_base());

    // Valid now: accepted, both ways.
    for jwt in [hs256(&with_nbf(now() - 60)), rs256("rsa-1", &with_nbf(now() - 60))] {
        let (status, body) = me(&jwt).await;
        assert_eq!((status, body["user"].as_str()), (200, Some("alice")), "{body}");
        assert!(tokio_tungstenite::connect_async(ws(&jwt)).await.is_ok());
    }
    // Valid in an hour: refused, both ways, with the same code.
    for jwt in [hs256(&with_nbf(now() + 3600)), rs256("rsa-1", &with_nbf(now() + 3600))] {
        let (status, body) = me(&jwt).await;
        assert_eq!((status, code(&body)), (401, "invalid_token"), "{body}");
        match tokio_tungstenite::connect_async(ws(&jwt)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
    }
    s.stop().await;
}
