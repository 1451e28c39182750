//! FCM's HTTP v1 API: `POST {base}/v1/projects/{project}/messages:send` with
//! an OAuth access token ([`oauth`]), and what its answers mean.

mod oauth;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{self, describe};
use super::{PushConfig, PushConfigError, PushError, PushMessage};
use crate::ids::Timestamp;
use oauth::OAuth;

/// The name in errors.
const PROVIDER: &str = "FCM";

/// Sends through FCM.
pub(super) struct Fcm {
    client: reqwest::Client,
    oauth: OAuth,
    send_url: String,
    ttl_secs: u32,
}

/// What one POST came to.
enum Answer {
    Done(Result<(), PushError>),
    /// 401 about our access token: renew it and try once more.
    Unauthenticated,
}

impl Fcm {
    /// Reads the service account and builds the client.
    pub fn new(config: &PushConfig) -> Result<Fcm, PushConfigError> {
        let client = http::client(config, false)?;
        let base = reqwest::Url::parse(config.fcm_base_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
            .ok_or(PushConfigError::FcmBaseUrl)?;
        let oauth = OAuth::new(&config.fcm_credentials, client.clone())?;
        let base = base.as_str().trim_end_matches('/');
        let send_url = format!("{base}/v1/projects/{}/messages:send", oauth.project_id());
        Ok(Fcm { client, oauth, send_url, ttl_secs: config.ttl_secs })
    }

    /// Sends `msg` to the device with registration token `token`.
    pub async fn send(&self, token: &str, msg: &PushMessage) -> Result<(), PushError> {
        let body = body(token, msg, self.ttl_secs, Timestamp::now().millis() / 1000).to_string();
        let access = self.oauth.token().await?;
        match self.post(&access, &body).await? {
            Answer::Done(result) => return result,
            Answer::Unauthenticated => self.oauth.invalidate(&access).await,
        }
        let access = self.oauth.token().await?;
        match self.post(&access, &body).await? {
            Answer::Done(result) => result,
            Answer::Unauthenticated => Err(PushError::Rejected(
                "FCM refused a fresh access token (401): check the service account".into(),
            )),
        }
    }

    async fn post(&self, access: &str, body: &str) -> Result<Answer, PushError> {
        let response = self
            .client
            .post(&self.send_url)
            .bearer_auth(access)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| http::unanswered(PROVIDER, &e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(Answer::Done(Ok(())));
        }
        let headers = response.headers().clone();
        let error =
            serde_json::from_slice::<ErrorBody>(&http::read_capped(response).await).ok().map(|b| b.error);
        Ok(answer(status, &headers, error.as_ref()))
    }
}

/// The message for `token` (FCM v1's `Message`): the notification, the data,
/// and per platform the collapse key and time to live.
fn body(token: &str, msg: &PushMessage, ttl_secs: u32, now: i64) -> Value {
    let mut android = json!({"ttl": format!("{ttl_secs}s")});
    // APNs: the time to live is an expiry date (unix seconds).
    let mut apns_headers = json!({"apns-expiration": (now + i64::from(ttl_secs)).to_string()});
    let mut webpush_headers = json!({"TTL": ttl_secs.to_string()});
    if !msg.collapse_key.is_empty() {
        android["collapse_key"] = json!(msg.collapse_key);
        apns_headers["apns-collapse-id"] = json!(apns_collapse_id(&msg.collapse_key));
        if let Some(topic) = super::webpush::topic(&msg.collapse_key) {
            webpush_headers["Topic"] = json!(topic);
        }
    }
    json!({
        "message": {
            "token": token,
            "notification": {"title": msg.title, "body": msg.body},
            "data": msg.data,
            "android": android,
            "apns": {"headers": apns_headers},
            "webpush": {"headers": webpush_headers},
        }
    })
}

/// APNs takes a collapse id of at most 64 bytes: a longer key is cut at a
/// character boundary.
fn apns_collapse_id(key: &str) -> &str {
    let mut end = key.len().min(64);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

/// FCM's error answer (google.rpc.Status).
#[derive(Deserialize)]
struct ErrorBody {
    error: Status,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Detail>,
}

/// One of `details`: a `google.firebase.fcm.v1.FcmError` (`errorCode`) or a
/// `google.rpc.BadRequest` (`fieldViolations`).
#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(rename = "errorCode", default)]
    error_code: Option<String>,
    #[serde(rename = "fieldViolations", default)]
    field_violations: Vec<FieldViolation>,
}

#[derive(Deserialize)]
struct FieldViolation {
    #[serde(default)]
    field: String,
}

impl Status {
    /// The `FcmError`'s code, if there is one.
    fn fcm_code(&self) -> Option<&str> {
        self.details
            .iter()
            .filter(|d| d.kind.ends_with("google.firebase.fcm.v1.FcmError"))
            .find_map(|d| d.error_code.as_deref())
    }

    /// Whether a 400 is about the registration token (not the rest of the message).
    fn about_the_token(&self) -> bool {
        let field = self.details.iter().flat_map(|d| &d.field_violations).any(|v| v.field == "message.token");
        let invalid = self.fcm_code() == Some("INVALID_ARGUMENT") || self.status == "INVALID_ARGUMENT";
        field || (invalid && self.message.to_ascii_lowercase().contains("registration token"))
    }
}

/// What an answer other than 2xx means. Reasons carry the status and codes
/// only: FCM's messages can quote the message's content.
fn answer(status: u16, headers: &reqwest::header::HeaderMap, error: Option<&Status>) -> Answer {
    let none = Status::default();
    let error = error.unwrap_or(&none);
    let code = error.fcm_code().or(Some(error.status.as_str()).filter(|s| !s.is_empty()));
    let code = code.filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let result = match status {
        _ if error.fcm_code() == Some("UNREGISTERED") => Err(PushError::InvalidToken),
        400 if error.about_the_token() => Err(PushError::InvalidToken),
        // FCM could not reach APNs or the Web Push service with the project's
        // credentials for them: ours are fine, renewing would not help.
        401 if error.fcm_code() == Some("THIRD_PARTY_AUTH_ERROR") => {
            Err(PushError::Rejected(describe(PROVIDER, status, code)))
        }
        401 => return Answer::Unauthenticated,
        429 | 500..=599 => Err(http::retry(PROVIDER, status, code, headers)),
        // 400 about the message, 403 SENDER_ID_MISMATCH or a missing
        // permission, 404 an unknown project: not the device's fault.
        _ => {
            let fields: Vec<&str> =
                error.details.iter().flat_map(|d| &d.field_violations).map(|v| v.field.as_str()).collect();
            let mut reason = describe(PROVIDER, status, code);
            if !fields.is_empty() {
                reason = format!("{reason}: invalid {}", fields.join(", "));
            }
            Err(PushError::Rejected(reason))
        }
    };
    Answer::Done(result)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::*;

    fn status(json: Value) -> Status {
        serde_json::from_value::<ErrorBody>(json).unwrap().error
    }

    fn done(status_code: u16, headers: &HeaderMap, error: Option<&Status>) -> Result<(), PushError> {
        match answer(status_code, headers, error) {
            Answer::Done(result) => result,
            Answer::Unauthenticated => panic!("unauthenticated"),
        }
    }

    fn fcm_error(code: u16, status_name: &str, message: &str, error_code: &str) -> Status {
        status(json!({"error": {"code": code, "message": message, "status": status_name, "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}
        ]}}))
    }

    #[test]
    fn errors_map_to_outcomes() {
        let none = HeaderMap::new();
        let unregistered = fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED");
        assert_eq!(done(404, &none, Some(&unregistered)), Err(PushError::InvalidToken));

        let bad_token = fcm_error(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            "INVALID_ARGUMENT",
        );
        assert_eq!(done(400, &none, Some(&bad_token)), Err(PushError::InvalidToken));

        // A 400 about the data is the message's fault, not the token's.
        let bad_data = status(
            json!({"error": {"code": 400, "message": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
            "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "message.data[0].value", "description": "Invalid value (TYPE_STRING), 12"}]}]}}),
        );
        let Err(PushError::Rejected(reason)) = done(400, &none, Some(&bad_data)) else { panic!() };
        assert_eq!(reason, "FCM answered 400 (INVALID_ARGUMENT): invalid message.data[0].value");
        assert!(!reason.contains("12"), "no content in reasons");

        // An unknown project: not the device's fault either.
        let not_found = status(
            json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}),
        );
        assert!(matches!(done(404, &none, Some(&not_found)), Err(PushError::Rejected(_))));
        let mismatch = fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH");
        assert!(
            matches!(done(403, &none, Some(&mismatch)), Err(PushError::Rejected(r)) if r.contains("SENDER_ID_MISMATCH"))
        );

        let third_party = fcm_error(
            401,
            "UNAUTHENTICATED",
            "Auth error from APNS or Web Push Service",
            "THIRD_PARTY_AUTH_ERROR",
        );
        assert!(matches!(done(401, &none, Some(&third_party)), Err(PushError::Rejected(_))));
        assert!(matches!(answer(401, &none, None), Answer::Unauthenticated));

        let mut retry_after = HeaderMap::new();
        retry_after.insert(RETRY_AFTER, HeaderValue::from_static("17"));
        let quota = fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED");
        assert_eq!(
            done(429, &retry_after, Some(&quota)),
            Err(PushError::Retry {
                after: Some(Duration::from_secs(17)),
                reason: "FCM answered 429 (QUOTA_EXCEEDED)".into()
            })
        );
        assert!(matches!(done(503, &none, None), Err(PushError::Retry { after: None, .. })));
        assert!(matches!(
            done(500, &none, Some(&fcm_error(500, "INTERNAL", "x", "INTERNAL"))),
            Err(PushError::Retry { .. })
        ));
    }

    #[test]
    fn the_body_has_fcm_v1_shape() {
        let msg = PushMessage {
            title: "Ada".into(),
            body: "hello".into(),
            data: BTreeMap::from([("chat".to_owned(), "7".to_owned())]),
            collapse_key: "chat:7".into(),
        };
        let body = body("tok", &msg, 60, 1_000);
        assert_eq!(
            body,
            json!({"message": {
                "token": "tok",
                "notification": {"title": "Ada", "body": "hello"},
                "data": {"chat": "7"},
                "android": {"collapse_key": "chat:7", "ttl": "60s"},
                "apns": {"headers": {"apns-collapse-id": "chat:7", "apns-expiration": "1060"}},
                "webpush": {"headers": {"TTL": "60", "Topic": super::super::webpush::topic("chat:7").unwrap()}},
            }})
        );
        let plain = PushMessage { collapse_key: String::new(), ..msg };
        let body = super::body("tok", &plain, 60, 1_000);
        assert!(body["message"]["android"].get("collapse_key").is_none());
        assert!(body["message"]["webpush"]["headers"].get("Topic").is_none());
        assert_eq!(apns_collapse_id(&"é".repeat(40)).len(), 64);
        assert_eq!(apns_collapse_id(&format!("a{}", "é".repeat(40))).len(), 63);
    }
}
