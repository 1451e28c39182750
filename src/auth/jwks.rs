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
//! `jwk` headers are ignored. It may only lead to public addresses unless
//! the operator says otherwise (see [`egress`](super::egress)).
//!
//! The cache is bounded: at most `max_key_sets` URLs, the least recently
//! used evicted first, and a URL unused for `cache_ttl_secs` (or
//! `min_refetch_secs`, if longer) is forgotten. A failed fetch is remembered
//! like a successful one, so a URL that does not answer is tried at most
//! once per `min_refetch_secs` however many tokens name it. Failures are
//! counted (`weft_jwks_fetch_failures_total`) and logged at warn at most
//! once a minute per URL and [`MAX_WARNINGS`] a minute in all, naming the
//! host only (a URL's path or query may hold a secret).

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
use crate::auth::egress::{EgressPolicy, NonPublicAddress, PublicResolver};
use crate::ids::{AppId, UserId};
use crate::metrics::metrics;

/// The largest key set accepted; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub(crate) const LEEWAY_SECS: u64 = 5;
/// A failing URL is logged at warn at most once per this long…
const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// …and all failing URLs together at most this many times per [`WARN_INTERVAL`].
pub const MAX_WARNINGS: u32 = 10;

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
    /// The most URLs whose key sets (or failures) are cached; the least recently used goes first.
    pub max_key_sets: usize,
    /// Let JWKS URLs lead to loopback, private, link-local and other non-public
    /// addresses (an identity provider on the operator's own network).
    pub allow_private_networks: bool,
    /// Hosts (names, or addresses as written in the URL) that may lead to
    /// non-public addresses when `allow_private_networks` is off.
    pub private_hosts: Vec<String>,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self {
            cache_ttl_secs: 300,
            min_refetch_secs: 30,
            fetch_timeout_ms: 3000,
            allow_http: false,
            max_key_sets: 1024,
            allow_private_networks: false,
            private_hosts: Vec::new(),
        }
    }
}

impl JwksConfig {
    /// Checks what types alone cannot; on error, the key and why.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_key_sets == 0 {
            return Err(("jwks.max_key_sets", "must be at least 1"));
        }
        let is_host = |h: &str| {
            let unbracketed = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h);
            unbracketed.parse::<std::net::IpAddr>().is_ok() || !(h.is_empty() || h.contains(['/', ':', '@']))
        };
        if !self.private_hosts.iter().all(|h| is_host(h)) {
            return Err((
                "jwks.private_hosts",
                "every entry must be a host name or address, without scheme or port",
            ));
        }
        Ok(())
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
    /// The URL is not one weft may fetch (stored before a stricter config, say).
    #[error("{0}")]
    Refused(&'static str),
    /// The URL's host is, or resolves to, a non-public address (see `jwks.allow_private_networks`).
    #[error("the jwks url leads to a non-public address")]
    NonPublic(#[source] NonPublicAddress),
}

impl FetchError {
    /// Recognises the resolver's refusal inside the HTTP client's error.
    fn from_request(e: reqwest::Error) -> Self {
        let mut source = e.source();
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<NonPublicAddress>() {
                return FetchError::NonPublic(refused.clone());
            }
            source = cause.source();
        }
        // The URL's path and query may hold a secret: the error is logged without them.
        FetchError::Request(e.without_url())
    }
}

/// Verifies user tokens against applications' JWKS URLs; a cheap `Clone`
/// sharing one cache.
#[derive(Clone)]
pub struct JwksVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwksConfig,
    policy: Arc<EgressPolicy>,
    /// Built once; if that failed, every fetch reports why.
    client: Result<reqwest::Client, Arc<FetchError>>,
    caches: Mutex<Caches>,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl JwksVerifier {
    /// A verifier with an empty cache.
    pub fn new(config: JwksConfig) -> Self {
        let policy = Arc::new(EgressPolicy {
            allow_private_networks: config.allow_private_networks,
            private_hosts: config.private_hosts.clone(),
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.fetch_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect past the resolver's checks.
            .no_proxy()
            .dns_resolver(Arc::new(PublicResolver(Arc::clone(&policy))))
            .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Arc::new(FetchError::Client(e)));
        let caches = Mutex::new(Caches::new(Instant::now()));
        Self { inner: Arc::new(Inner { config, policy, client, caches }) }
    }

    /// Checks a JWKS URL an application configures: absolute, `https://`
    /// (or `http://` when `allow_http`), without user or password, at most
    /// 2048 bytes, and not a literal non-public address (host names are
    /// checked when they are resolved, at each fetch).
    pub fn check_url(&self, raw: &str) -> Result<(), &'static str> {
        let url = self.inner.parse_url(raw)?;
        if self.inner.policy.check_literal(&url).is_err() {
            return Err("`jwks_url` points at a loopback, private or otherwise non-public address \
                        (an identity provider on a private network needs jwks.allow_private_networks \
                        or jwks.private_hosts)");
        }
        Ok(())
    }

    /// How many URLs the cache holds (at most `jwks.max_key_sets`).
    pub fn cached_key_sets(&self) -> usize {
        self.inner.caches().entries.len()
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
            let now = Instant::now();
            let cache = caches.entry(url, now, &self.inner.config);
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
                Ok(client) => inner.fetch(client, &url).await.map_err(Arc::new),
                Err(e) => Err(Arc::clone(e)),
            };
            let now = Instant::now();
            let mut caches = inner.caches();
            if let Err(e) = &fetched {
                metrics().jwks_fetch_failures.inc();
                let host = reqwest::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_owned));
                let host = host.unwrap_or_default();
                if caches.may_warn(&url, now) {
                    tracing::warn!(host = %host, error = %Chain(e), "cannot fetch jwks");
                } else {
                    tracing::debug!(host = %host, error = %Chain(e), "cannot fetch jwks");
                }
            }
            caches.record(&url, fetched, now)
        });
        async move { task.await.unwrap_or_else(|_| Err(Arc::new(FetchError::Aborted))) }.boxed().shared()
    }
}

impl Inner {
    /// Checks a URL's shape (everything but its address).
    fn parse_url(&self, raw: &str) -> Result<reqwest::Url, &'static str> {
        if raw.len() > 2048 {
            return Err("`jwks_url` is longer than 2048 bytes");
        }
        let url = reqwest::Url::parse(raw).map_err(|_| "`jwks_url` is not an absolute URL")?;
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if url.host().is_some() && self.config.allow_http => {}
            "http" => return Err("`jwks_url` must be https:// (http:// needs jwks.allow_http)"),
            _ => return Err("`jwks_url` must be an https:// URL"),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("`jwks_url` must not carry a user name or password");
        }
        Ok(url)
    }

    /// Fetches and parses the key set at `url`, if weft may fetch it.
    async fn fetch(&self, client: &reqwest::Client, url: &str) -> Result<KeySet, FetchError> {
        // Checked again: the URL may have been stored under another config. A
        // literal address never reaches the resolver, so it is checked here.
        let parsed = self.parse_url(url).map_err(FetchError::Refused)?;
        self.policy.check_literal(&parsed).map_err(FetchError::NonPublic)?;
        fetch(client, parsed).await
    }

    fn caches(&self) -> MutexGuard<'_, Caches> {
        // Every critical section leaves the map consistent, so a poisoned lock is still usable.
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every URL's cache, bounded, and the warn budget.
struct Caches {
    entries: HashMap<String, Cache>,
    /// When entries unused for their lifetime were last dropped.
    swept_at: Instant,
    /// The current warn window's start, and the warnings logged in it.
    warnings: (Instant, u32),
}

impl Caches {
    fn new(now: Instant) -> Self {
        Self { entries: HashMap::new(), swept_at: now, warnings: (now, 0) }
    }

    /// The entry of `url`, marked used; a new one evicts what it must to stay within `max_key_sets`.
    fn entry(&mut self, url: &str, now: Instant, config: &JwksConfig) -> &mut Cache {
        let lifetime = Cache::lifetime(config);
        let max = config.max_key_sets.max(1);
        let full = |entries: &HashMap<String, Cache>| !entries.contains_key(url) && entries.len() >= max;
        // Drop what nobody used for a lifetime: once per lifetime (so the cache
        // shrinks after a burst), and whenever a new URL finds the cache full.
        if full(&self.entries) || now.saturating_duration_since(self.swept_at) >= lifetime {
            self.entries.retain(|u, cache| u == url || !cache.unused_for(lifetime, now));
            self.swept_at = now;
        }
        // Still full: the least recently used goes.
        while full(&self.entries) {
            let oldest = self.entries.iter().min_by_key(|(_, cache)| cache.used_at).map(|(u, _)| u.clone());
            match oldest {
                Some(oldest) => self.entries.remove(&oldest),
                None => break,
            };
        }
        let cache = self.entries.entry(url.to_owned()).or_default();
        cache.used_at = Some(now);
        cache
    }

    /// Records a fetch's outcome (unless the entry was evicted meanwhile); returns the keys to use.
    fn record(
        &mut self,
        url: &str,
        fetched: Result<KeySet, Arc<FetchError>>,
        now: Instant,
    ) -> Result<Arc<KeySet>, Arc<FetchError>> {
        match self.entries.get_mut(url) {
            Some(cache) => cache.record(fetched, now),
            None => fetched.map(Arc::new),
        }
    }

    /// Whether a failure of `url` may be logged at warn now (and counts it if so).
    fn may_warn(&mut self, url: &str, now: Instant) -> bool {
        let warned_at = self.entries.get(url).and_then(|cache| cache.warned_at);
        if warned_at.is_some_and(|at| now.saturating_duration_since(at) < WARN_INTERVAL) {
            return false;
        }
        let (window, count) = &mut self.warnings;
        if now.saturating_duration_since(*window) >= WARN_INTERVAL {
            (*window, *count) = (now, 0);
        }
        if *count >= MAX_WARNINGS {
            return false;
        }
        *count += 1;
        if let Some(cache) = self.entries.get_mut(url) {
            cache.warned_at = Some(now);
        }
        true
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
    /// When a verification last asked for this URL.
    used_at: Option<Instant>,
    /// When a failure of this URL was last logged at warn.
    warned_at: Option<Instant>,
}

/// What a verification does next to get its key set.
enum Step {
    Use(Arc<KeySet>),
    Join(SharedFetch),
    Fetch,
    Fail(Arc<FetchError>),
}

impl Cache {
    /// How long an unused entry is kept: its keys' TTL, or the refetch window if
    /// longer (forgetting a failure sooner would let its URL be fetched again sooner).
    fn lifetime(config: &JwksConfig) -> Duration {
        Duration::from_secs(config.cache_ttl_secs.max(config.min_refetch_secs))
    }

    /// Whether nobody asked for this URL for `lifetime` and no fetch of it is running.
    fn unused_for(&self, lifetime: Duration, now: Instant) -> bool {
        let running = self.in_flight.as_ref().is_some_and(|fetch| fetch.peek().is_none());
        !running && self.used_at.is_none_or(|at| now.saturating_duration_since(at) >= lifetime)
    }

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

async fn fetch(client: &reqwest::Client, url: reqwest::Url) -> Result<KeySet, FetchError> {
    let mut response = client.get(url).send().await.map_err(FetchError::from_request)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status()));
    }
    if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::from_request)? {
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
            (config.cache_ttl_secs, config.min_refetch_secs, config.fetch_timeout_ms, config.max_key_sets),
            (300, 30, 3000, 1024)
        );
        assert!(!config.allow_private_networks && config.private_hosts.is_empty());
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
    fn config_checks_the_bound_and_the_private_hosts() {
        assert!(JwksConfig::default().check().is_ok());
        let hosts = |hosts: &[&str]| JwksConfig {
            private_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            ..JwksConfig::default()
        };
        assert!(hosts(&["idp.internal", "10.0.0.5", "fd00::5", "[fd00::6]"]).check().is_ok());
        for bad in ["", "https://idp.internal", "idp.internal:8443", "user@idp.internal"] {
            assert_eq!(hosts(&[bad]).check().unwrap_err().0, "jwks.private_hosts", "{bad:?}");
        }
        let unbounded = JwksConfig { max_key_sets: 0, ..JwksConfig::default() };
        assert_eq!(unbounded.check().unwrap_err().0, "jwks.max_key_sets");
    }

    #[test]
    fn urls_to_non_public_addresses_and_with_credentials_are_refused() {
        let strict = JwksVerifier::new(JwksConfig::default());
        for url in [
            "https://127.0.0.1:18561/jwks.json",
            "https://127.1/jwks.json",
            "https://0x7f000001/jwks.json",
            "https://0.0.0.0/jwks.json",
            "https://10.0.0.1/jwks.json",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/jwks.json",
            "https://192.168.0.1/jwks.json",
            "https://224.0.0.1/jwks.json",
            "https://255.255.255.255/jwks.json",
            "https://[::1]/jwks.json",
            "https://[::ffff:127.0.0.1]/jwks.json",
            "https://[fd00::1]/jwks.json",
            "https://[fe80::1]/jwks.json",
        ] {
            let reason = strict.check_url(url).unwrap_err();
            assert!(reason.contains("non-public address"), "{url}: {reason}");
        }
        for url in ["https://user@idp.example/jwks.json", "https://user:pw@8.8.8.8/jwks.json"] {
            assert_eq!(strict.check_url(url), Err("`jwks_url` must not carry a user name or password"));
        }
        // Public addresses and names pass (names are checked when resolved).
        for url in ["https://8.8.8.8/jwks.json", "https://[2606:4700::1111]/k", "https://localhost/jwks.json"]
        {
            assert_eq!(strict.check_url(url), Ok(()), "{url}");
        }

        let open = JwksVerifier::new(JwksConfig { allow_private_networks: true, ..JwksConfig::default() });
        assert_eq!(open.check_url("https://127.0.0.1:18561/jwks.json"), Ok(()));
        assert!(open.check_url("https://user:pw@127.0.0.1/jwks.json").is_err());
        let named =
            JwksVerifier::new(JwksConfig { private_hosts: vec!["10.0.0.5".into()], ..JwksConfig::default() });
        assert_eq!(named.check_url("https://10.0.0.5:8443/jwks.json"), Ok(()));
        assert!(named.check_url("https://10.0.0.6/jwks.json").is_err());
    }

    #[test]
    fn the_cache_holds_at_most_max_key_sets_evicting_the_least_recently_used() {
        let config = JwksConfig { max_key_sets: 3, ..JwksConfig::default() };
        let t0 = Instant::now();
        let mut caches = Caches::new(t0);
        let at = |secs| t0 + Duration::from_secs(secs);
        for (i, url) in ["a", "b", "c"].into_iter().enumerate() {
            caches.entry(url, at(i as u64), &config);
        }
        // `a` used again: `b` is now the least recently used.
        caches.entry("a", at(3), &config);
        caches.entry("d", at(4), &config);
        let mut urls: Vec<&str> = caches.entries.keys().map(String::as_str).collect();
        urls.sort_unstable();
        assert_eq!(urls, ["a", "c", "d"]);
        for i in 0..1000 {
            caches.entry(&format!("https://attacker.example/{i}"), at(5), &config);
            assert!(caches.entries.len() <= 3);
        }
        // A fetch that finishes after its entry was evicted is not put back.
        assert!(caches.record("a", Ok(KeySet::parse(FIXTURE.as_bytes()).unwrap()), at(6)).is_ok());
        assert!(!caches.entries.contains_key("a"));
    }

    #[test]
    fn entries_unused_for_their_lifetime_are_dropped() {
        let config = JwksConfig::default();
        let t0 = Instant::now();
        let mut caches = Caches::new(t0);
        for i in 0..100 {
            caches.entry(&format!("https://idp{i}.example/jwks"), t0, &config);
        }
        caches.entry("https://busy.example/jwks", t0 + Duration::from_secs(200), &config);
        assert_eq!(caches.entries.len(), 101);
        // A lifetime (the 300 s TTL) later, one lookup sweeps everything nobody asked for since.
        caches.entry("https://busy.example/jwks", t0 + Duration::from_secs(300), &config);
        assert_eq!(caches.entries.keys().collect::<Vec<_>>(), ["https://busy.example/jwks"]);
    }

    #[test]
    fn a_failing_url_warns_once_a_minute_and_all_of_them_a_few_times() {
        let config = JwksConfig::default();
        let t0 = Instant::now();
        let mut caches = Caches::new(t0);
        caches.entry("https://a.example/", t0, &config);
        assert!(caches.may_warn("https://a.example/", t0));
        assert!(!caches.may_warn("https://a.example/", t0 + Duration::from_secs(59)));
        assert!(caches.may_warn("https://a.example/", t0 + Duration::from_secs(60)));
        // Many failing URLs: at most MAX_WARNINGS a minute between them.
        let t1 = t0 + Duration::from_secs(120);
        let warned = (0..100)
            .filter(|i| {
                let url = format!("https://idp{i}.example/");
                caches.entry(&url, t1, &config);
                caches.may_warn(&url, t1)
            })
            .count();
        assert_eq!(warned, MAX_WARNINGS as usize);
    }

    #[test]
    fn errors_are_logged_with_their_causes() {
        let e = FetchError::Malformed(serde_json::from_str::<u8>("x").unwrap_err());
        assert!(Chain(&e).to_string().starts_with("the key set is not a jwks document: expected value"));
    }
}
