//! Google's OAuth 2.0 for service accounts: a JWT signed with the account's
//! RSA key (RS256) traded at `token_uri` for an access token, kept until
//! shortly before it expires.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::super::http::{self, describe};
use super::super::{PushConfigError, PushError};
use crate::ids::Timestamp;

/// The scope FCM's send API wants.
pub(super) const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// Google's token endpoint, when the key names none.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// How long the assertion is valid (Google's maximum).
const ASSERTION_SECS: i64 = 3600;

/// What is read of the service-account JSON (it holds more).
#[derive(Deserialize)]
struct ServiceAccount {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    project_id: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct Grant {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct GrantError {
    #[serde(default)]
    error: String,
}

/// An access token and when to stop using it.
struct Cached {
    token: String,
    renew_at: Instant,
}

/// A service account's access tokens, fetched when needed, one fetch at a time.
pub(super) struct OAuth {
    client: reqwest::Client,
    project_id: String,
    client_email: String,
    token_uri: String,
    key: EncodingKey,
    key_id: Option<String>,
    cache: Mutex<Option<Cached>>,
}

impl OAuth {
    /// Reads the service-account JSON and checks its key by signing with it.
    pub fn new(credentials: &str, client: reqwest::Client) -> Result<OAuth, PushConfigError> {
        let bad = |why: &str| PushConfigError::FcmCredentials(why.to_owned());
        let account: ServiceAccount = serde_json::from_str(credentials)
            .map_err(|_| bad("must be the service account's JSON key file, as a string"))?;
        if account.kind.as_deref().is_some_and(|kind| kind != "service_account") {
            return Err(bad("is not a service-account key (its `type` is not \"service_account\")"));
        }
        if account.project_id.is_empty() || account.client_email.is_empty() || account.private_key.is_empty()
        {
            return Err(bad("must hold `project_id`, `client_email` and `private_key`"));
        }
        let project_ok = account.project_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !project_ok {
            return Err(bad("`project_id` must be letters, digits and '-'"));
        }
        let token_uri =
            if account.token_uri.is_empty() { GOOGLE_TOKEN_URI.to_owned() } else { account.token_uri };
        if !reqwest::Url::parse(&token_uri).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) {
            return Err(bad("`token_uri` must be an http(s) URL"));
        }
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|_| bad("`private_key` must be a PEM RSA private key"))?;
        let oauth = OAuth {
            client,
            project_id: account.project_id,
            client_email: account.client_email,
            token_uri,
            key,
            key_id: account.private_key_id.filter(|id| !id.is_empty()),
            cache: Mutex::new(None),
        };
        // The PEM parser checks the wrapping only: a signature proves the key.
        oauth.assertion(0).map_err(|_| bad("`private_key` is not a usable RSA private key"))?;
        Ok(oauth)
    }

    /// The Firebase project.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// A valid access token: the kept one, or a new one.
    pub async fn token(&self) -> Result<String, PushError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        let fresh = self.grant().await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Forgets `used` (FCM refused it): the next [`token`](Self::token) fetches another.
    pub async fn invalidate(&self, used: &str) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|cached| cached.token == used) {
            *cache = None;
        }
    }

    /// The signed assertion for `now` (unix seconds).
    fn assertion(&self, now: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    /// Trades a fresh assertion for an access token.
    async fn grant(&self) -> Result<Cached, PushError> {
        const PROVIDER: &str = "the OAuth token endpoint";
        let assertion = self
            .assertion(Timestamp::now().millis() / 1000)
            .map_err(|_| PushError::Rejected("cannot sign the OAuth assertion".into()))?;
        let started = Instant::now();
        let response = self
            .client
            .post(&self.token_uri)
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
            .send()
            .await
            .map_err(|e| http::unanswered(PROVIDER, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http::read_capped(response).await;
        match status {
            200 => {}
            429 | 500..=599 => return Err(http::retry(PROVIDER, status, None, &headers)),
            // `invalid_grant` (a revoked key, a clock far off), `invalid_client`...
            _ => {
                let code = serde_json::from_slice::<GrantError>(&body).ok().map(|e| e.error);
                let code = code
                    .filter(|c| !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()));
                return Err(PushError::Rejected(describe(PROVIDER, status, code.as_deref())));
            }
        }
        let grant: Grant = serde_json::from_slice(&body).map_err(|_| PushError::Retry {
            after: None,
            reason: format!("{PROVIDER} gave no access token"),
        })?;
        let lifetime = Duration::from_secs(grant.expires_in.unwrap_or(3600));
        // Renew five minutes early, or halfway through a short lifetime.
        let margin = Duration::from_secs(300).min(lifetime / 2);
        tracing::debug!(lifetime_secs = lifetime.as_secs(), "fcm: new access token");
        Ok(Cached { token: grant.access_token, renew_at: started + lifetime - margin })
    }
}
