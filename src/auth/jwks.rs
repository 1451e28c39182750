//! User tokens signed by an application's own identity provider (RS256 or
//! ES256), checked against the public keys it publishes at a JWKS URL.
//!
//! Key sets are cached per URL. A token whose `kid` is not cached triggers a
//! refetch, but fetches of one URL start at most once per `min_refetch_secs`,
//! so a flood of forged kids cannot make weft hammer the provider. A fetch
//! runs in its own task and is shared by every verification waiting for it,
//! so a caller that gives up (a client hanging up) neither cancels it nor
//! lets the next caller start another.
//!
//! Only the configured URL is ever fetched: the token's `jku`, `x5u` and
//! `jwk` headers are ignored.

use std::collections::HashMap;
use std::error::Error as _;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::{Choice, ConstantTimeEq};

use crate::auth::TokenError;
use crate::ids::{AppId, UserId};

/// The largest key set accepted; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// How [`JwksVerifier`] caches and fetches key sets.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JwksConfig {
    /// How long a fetched key set is used before it is fetched again.
    pub cache_ttl_secs: u64,
    /// The shortest time between two fetches of one URL, whatever asks for them.
    pub min_refetch_secs: u64,
    /// The longest one fetch may take, from connecting to the end of the body.
    pub fetch_timeout_ms: u64,
    /// Accept `http://` JWKS URLs (development only; production needs `https://`).
    pub allow_http: bool,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self { cache_ttl_secs: 300, min_refetch_secs: 30, fetch_timeout_ms: 3000, allow_http: false }
    }
}

/// Why a key set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP client could not be built.
    #[error("cannot build the http client")]
    Client(#[source] reqwest::Error),
    /// Connecting, sending or reading failed, or took longer than the timeout.
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    /// The server answered with something other than 2xx (redirects are not followed).
    #[error("the server answered {0}")]
    Status(reqwest::StatusCode),
    /// The body is larger than 256 KiB.
    #[error("the key set is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The body is not a JSON object with a `keys` array.
    #[error("the key set is not a jwks document")]
    Malformed(#[source] serde_json::Error),
    /// The fetch task ended without an answer (the runtime is shutting down).
    #[error("the fetch was aborted")]
    Aborted,
}

/// Verifies user tokens against applications' JWKS URLs; a cheap `Clone`
/// sharing one cache.
#[derive(Clone)]
pub struct JwksVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwksConfig,
    /// Built once; if that failed, every fetch reports why.
    client: Result<reqwest::Client, Arc<FetchError>>,
    caches: Mutex<HashMap<String, Cache>>,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl JwksVerifier {
    /// A verifier with an empty cache.
    pub fn new(config: JwksConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.fetch_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Arc::new(FetchError::Client(e)));
        Self { inner: Arc::new(Inner { config, client, caches: Mutex::new(HashMap::new()) }) }
    }

    /// Checks a JWKS URL an application configures: absolute, `https://`
    /// (or `http://` when `allow_http`), at most 2048 bytes.
    pub fn check_url(&self, raw: &str) -> Result<(), &'static str> {
        if raw.len() > 2048 {
            return Err("`jwks_url` is longer than 2048 bytes");
        }
        let url = reqwest::Url::parse(raw).map_err(|_| "`jwks_url` is not an absolute URL")?;
        match url.scheme() {
            "https" if url.host().is_some() => Ok(()),
            "http" if url.host().is_some() && self.inner.config.allow_http => Ok(()),
            "http" => Err("`jwks_url` must be https:// (http:// needs jwks.allow_http)"),
            _ => Err("`jwks_url` must be an https:// URL"),
        }
    }

    /// Verifies `token` for `app` with the keys published at `jwks_url`; returns its user.
    ///
    /// Runs inside a Tokio runtime (a fetch is a spawned task).
    pub async fn verify(&self, jwks_url: &str, token: &str, app: &AppId) -> Result<UserId, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::Invalid)?;
        // Checked before any fetch, so an HS256 or "none" token costs nothing.
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(TokenError::Invalid(ErrorKind::InvalidAlgorithm.into()));
        }
        let kid = header.kid.as_deref();
        let keys = self.keys(jwks_url, kid).await?;
        let key = keys.find(kid).ok_or(TokenError::UnknownKey)?;
        if key.alg != header.alg {
            return Err(TokenError::Invalid(ErrorKind::InvalidAlgorithm.into()));
        }

        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // The application is checked below, from `app` or `aud`, in constant time.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e),
            })?;
        if !data.claims.is_for(app) {
            return Err(TokenError::WrongApplication);
        }
        UserId::parse(&data.claims.sub).map_err(|_| TokenError::BadSubject)
    }

    /// The key set to look `kid` up in: cached, or fetched (or being fetched) now.
    async fn keys(&self, url: &str, kid: Option<&str>) -> Result<Arc<KeySet>, TokenError> {
        let fetch = {
            let mut caches = self.inner.caches();
            let cache = caches.entry(url.to_owned()).or_default();
            let now = Instant::now();
            match cache.next_step(kid, now, &self.inner.config) {
                Step::Use(keys) => return Ok(keys),
                Step::Fail(e) => return Err(TokenError::KeysUnavailable(e)),
                Step::Join(fetch) => fetch,
                Step::Fetch => {
                    let fetch = self.spawn_fetch(url.to_owned());
                    // Counted from the start, so callers that give up cannot bypass the window.
                    cache.attempted_at = Some(now);
                    cache.in_flight = Some(fetch.clone());
                    fetch
                }
            }
        };
        fetch.await.map_err(TokenError::KeysUnavailable)
    }

    /// Starts fetching `url` in a task that records the outcome in the cache.
    fn spawn_fetch(&self, url: String) -> SharedFetch {
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            let fetched = match &inner.client {
                Ok(client) => fetch(client, &url).await.map_err(Arc::new),
                Err(e) => Err(Arc::clone(e)),
            };
            if let Err(e) = &fetched {
                tracing::warn!(url = %url, error = %Chain(e), "cannot fetch jwks");
            }
            let mut caches = inner.caches();
            caches.entry(url).or_default().record(fetched, Instant::now())
        });
        async move { task.await.unwrap_or_else(|_| Err(Arc::new(FetchError::Aborted))) }.boxed().shared()
    }
}

impl Inner {
    fn caches(&self) -> MutexGuard<'_, HashMap<String, Cache>> {
        // Every critical section leaves the map consistent, so a poisoned lock is still usable.
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fetch in progress, awaited by every verification that needs it.
type SharedFetch = Shared<BoxFuture<'static, Result<Arc<KeySet>, Arc<FetchError>>>>;

/// What weft knows of one JWKS URL.
#[derive(Default)]
struct Cache {
    /// The last key set fetched, and when.
    fetched: Option<(Arc<KeySet>, Instant)>,
    /// Why the last fetch failed, if it did.
    last_error: Option<Arc<FetchError>>,
    /// When the last fetch started, successful or not.
    attempted_at: Option<Instant>,
    in_flight: Option<SharedFetch>,
}

/// What a verification does next to get its key set.
enum Step {
    Use(Arc<KeySet>),
    Join(SharedFetch),
    Fetch,
    Fail(Arc<FetchError>),
}

impl Cache {
    fn next_step(&self, kid: Option<&str>, now: Instant, config: &JwksConfig) -> Step {
        let ttl = Duration::from_secs(config.cache_ttl_secs);
        if let Some((keys, at)) = &self.fetched
            && now.saturating_duration_since(*at) < ttl
            && keys.find(kid).is_some()
        {
            return Step::Use(Arc::clone(keys));
        }
        // A finished in-flight fetch whose task never recorded its outcome (aborted) is stale.
        if let Some(fetch) = &self.in_flight
            && fetch.peek().is_none()
        {
            return Step::Join(fetch.clone());
        }
        let min_refetch = Duration::from_secs(config.min_refetch_secs);
        if self.attempted_at.is_none_or(|at| now.saturating_duration_since(at) >= min_refetch) {
            return Step::Fetch;
        }
        // Too soon to fetch again: stale keys beat no keys.
        match (&self.fetched, &self.last_error) {
            (Some((keys, _)), _) => Step::Use(Arc::clone(keys)),
            (None, Some(e)) => Step::Fail(Arc::clone(e)),
            (None, None) => Step::Fetch,
        }
    }

    /// Records a fetch's outcome; returns the keys to use (the previous ones if it failed).
    fn record(
        &mut self,
        fetched: Result<KeySet, Arc<FetchError>>,
        now: Instant,
    ) -> Result<Arc<KeySet>, Arc<FetchError>> {
        self.in_flight = None;
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.fetched = Some((Arc::clone(&keys), now));
                self.last_error = None;
                Ok(keys)
            }
            Err(e) => {
                self.last_error = Some(Arc::clone(&e));
                self.fetched.as_ref().map(|(keys, _)| Arc::clone(keys)).ok_or(e)
            }
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<KeySet, FetchError> {
    let mut response = client.get(url).send().await.map_err(FetchError::Request)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status()));
    }
    if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Request)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    KeySet::parse(&body).map_err(FetchError::Malformed)
}

/// The usable keys of a fetched set.
struct KeySet {
    keys: Vec<VerifyingKey>,
}

struct VerifyingKey {
    kid: Option<String>,
    /// The one algorithm this key verifies, from its `kty` (and `crv`, `alg`).
    alg: Algorithm,
    key: DecodingKey,
}

impl KeySet {
    /// Parses a JWKS document, skipping keys weft cannot or must not use
    /// (HMAC, encryption keys, other algorithms and curves, unknown types)
    /// rather than refusing the whole set.
    fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(body)?;
        let keys = document
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| VerifyingKey::from_jwk(&jwk))
            .collect();
        Ok(Self { keys })
    }

    /// The key with this `kid`; with no `kid`, the only key if there is one.
    fn find(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match (kid, self.keys.as_slice()) {
            (Some(kid), keys) => keys.iter().find(|key| key.kid.as_deref() == Some(kid)),
            (None, [only]) => Some(only),
            (None, _) => None,
        }
    }
}

impl VerifyingKey {
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let common = &jwk.common;
        if common.public_key_use.as_ref().is_some_and(|usage| *usage != PublicKeyUse::Signature) {
            return None;
        }
        if common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
            return None;
        }
        let alg = match (&jwk.algorithm, common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => return None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(Self { kid: common.key_id.clone(), alg, key })
    }
}

/// The claims weft reads; `exp` (and `nbf`) are checked by `jsonwebtoken`.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    /// Whether the token is for `app`: its `app` claim if present, otherwise its `aud`.
    fn is_for(&self, app: &AppId) -> bool {
        let app = app.as_str().as_bytes();
        let matched = match (&self.app, &self.aud) {
            (Some(claimed), _) => claimed.as_bytes().ct_eq(app),
            (None, Some(Audience::One(aud))) => aud.as_bytes().ct_eq(app),
            // No early exit: every entry is compared.
            (None, Some(Audience::Many(auds))) => {
                auds.iter().fold(Choice::from(0), |found, aud| found | aud.as_bytes().ct_eq(app))
            }
            (None, None) => Choice::from(0),
        };
        matched.into()
    }
}

/// Displays an error with its sources, `a: b: c`, for the log.
struct Chain<'a>(&'a FetchError);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/jwks/jwks.json");

    fn fixture_keys() -> Arc<KeySet> {
        Arc::new(KeySet::parse(FIXTURE.as_bytes()).unwrap())
    }

    fn claims(json: serde_json::Value) -> Claims {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn config_defaults_and_strictness() {
        let config: JwksConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, JwksConfig::default());
        assert_eq!(
            (config.cache_ttl_secs, config.min_refetch_secs, config.fetch_timeout_ms),
            (300, 30, 3000)
        );
        let config: JwksConfig = serde_json::from_str(r#"{"min_refetch_secs": 5}"#).unwrap();
        assert_eq!(config.min_refetch_secs, 5);
        assert!(serde_json::from_str::<JwksConfig>(r#"{"ttl": 5}"#).is_err());
    }

    #[test]
    fn the_fixture_set_has_one_rsa_and_one_ec_key() {
        let keys = fixture_keys();
        assert_eq!(keys.find(Some("rsa-1")).unwrap().alg, Algorithm::RS256);
        assert_eq!(keys.find(Some("ec-1")).unwrap().alg, Algorithm::ES256);
        assert!(keys.find(Some("rsa-2")).is_none());
        // Two keys: a token without a kid matches neither.
        assert!(keys.find(None).is_none());
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let set: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        let rsa = set["keys"][0].clone();
        let ec = set["keys"][1].clone();
        let with = |key: &serde_json::Value, field: &str, value: serde_json::Value| {
            let mut key = key.clone();
            key[field] = value;
            key
        };
        let document = serde_json::json!({ "keys": [
            with(&rsa, "use", "enc".into()),
            with(&rsa, "alg", "RS384".into()),
            with(&rsa, "key_ops", serde_json::json!(["encrypt"])),
            with(&ec, "alg", "RS256".into()),
            with(&ec, "crv", "P-384".into()),
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
            { "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
            { "kty": "weird", "kid": "weird" },
            "not even an object",
            with(&ec, "kid", "only".into()),
        ]});
        let keys = KeySet::parse(document.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys.len(), 1);
        // One usable key: a token without a kid uses it.
        assert_eq!(keys.find(None).unwrap().kid.as_deref(), Some("only"));
        assert!(KeySet::parse(b"{\"no_keys\": []}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
    }

    #[test]
    fn the_application_is_the_app_claim_or_else_the_audience() {
        let app = AppId::new("app-1");
        assert!(claims(serde_json::json!({ "sub": "u", "app": "app-1" })).is_for(&app));
        assert!(!claims(serde_json::json!({ "sub": "u", "app": "app-2" })).is_for(&app));
        assert!(claims(serde_json::json!({ "sub": "u", "aud": "app-1" })).is_for(&app));
        assert!(claims(serde_json::json!({ "sub": "u", "aud": ["x", "app-1"] })).is_for(&app));
        assert!(!claims(serde_json::json!({ "sub": "u", "aud": ["x", "app-10"] })).is_for(&app));
        assert!(!claims(serde_json::json!({ "sub": "u", "aud": [] })).is_for(&app));
        // `app` wins over `aud`.
        assert!(!claims(serde_json::json!({ "sub": "u", "app": "app-2", "aud": "app-1" })).is_for(&app));
        assert!(!claims(serde_json::json!({ "sub": "u" })).is_for(&app));
    }

    #[test]
    fn fresh_known_keys_are_used_and_unknown_kids_refetch_once_per_window() {
        let config = JwksConfig::default();
        let t0 = Instant::now();
        let mut cache = Cache::default();
        assert!(matches!(cache.next_step(Some("rsa-1"), t0, &config), Step::Fetch));

        cache.attempted_at = Some(t0);
        cache.record(Ok(KeySet::parse(FIXTURE.as_bytes()).unwrap()), t0).unwrap();
        assert!(matches!(cache.next_step(Some("rsa-1"), t0, &config), Step::Use(_)));
        // Unknown kid, too soon after the last fetch: the cached set (and then "unknown key").
        assert!(matches!(
            cache.next_step(Some("rsa-2"), t0 + Duration::from_secs(29), &config),
            Step::Use(_)
        ));
        assert!(matches!(cache.next_step(Some("rsa-2"), t0 + Duration::from_secs(30), &config), Step::Fetch));
        // Past the ttl, even a known kid refetches.
        assert!(matches!(
            cache.next_step(Some("rsa-1"), t0 + Duration::from_secs(300), &config),
            Step::Fetch
        ));
    }

    #[test]
    fn a_failed_refetch_keeps_the_cached_keys() {
        let config = JwksConfig::default();
        let t0 = Instant::now();
        let mut cache = Cache { attempted_at: Some(t0), ..Cache::default() };
        assert!(cache.record(Err(Arc::new(FetchError::TooLarge)), t0).is_err());
        assert!(matches!(cache.next_step(Some("rsa-1"), t0, &config), Step::Fail(_)));

        let t1 = t0 + Duration::from_secs(30);
        cache.attempted_at = Some(t1);
        cache.record(Ok(KeySet::parse(FIXTURE.as_bytes()).unwrap()), t1).unwrap();
        let t2 = t1 + Duration::from_secs(300);
        cache.attempted_at = Some(t2);
        let kept = cache.record(Err(Arc::new(FetchError::TooLarge)), t2).unwrap();
        assert!(kept.find(Some("rsa-1")).is_some());
        assert!(matches!(cache.next_step(Some("rsa-1"), t2, &config), Step::Use(_)));
    }

    #[test]
    fn errors_are_logged_with_their_causes() {
        let e = FetchError::Malformed(serde_json::from_str::<u8>("x").unwrap_err());
        assert!(Chain(&e).to_string().starts_with("the key set is not a jwks document: expected value"));
    }
}
