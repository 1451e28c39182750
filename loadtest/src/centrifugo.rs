//! The Centrifugo adapter (`--target centrifugo`): the same scenarios against
//! a Centrifugo node, for a side-by-side benchmark (`loadtest/centrifugo.sh`).
//!
//! It speaks Centrifugo's bidirectional JSON protocol over
//! `/connection/websocket`: a `connect` command with an HS256 token (`sub` =
//! the user, signed with the node's `client.token.hmac_secret_key`), a
//! `subscribe` to the chat's channel for each receiving socket, a client
//! `publish` per send (the node needs `allow_publish_for_client` on the
//! channel), and pushes; several replies or pushes may share one frame,
//! separated by newlines, and an empty object `{}` is a ping answered with `{}`.
//!
//! A publish's reply is its ack (Centrifugo answers once the publication is
//! handed to its engine; it persists nothing, history being off). Publications
//! carry no number, so each sender numbers its own: the data is
//! `{"b":"<send timestamp>:<pad>","s":<sender>,"n":<number>}`, and the count
//! check treats each sender as a stream of its own (where weft has the chat's
//! `seq`).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Serialize;

/// A Centrifugo node's settings the generator needs.
#[derive(Clone, Debug)]
pub struct Centrifugo {
    /// The node's `client.token.hmac_secret_key`.
    pub secret: String,
    /// The channel of the `fanout` and `cluster` chat.
    pub channel: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
}

impl Centrifugo {
    /// A connection token of `user`, valid for a day.
    pub fn token(&self, user: &str) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?;
        let claims = Claims { sub: user, exp: now.as_secs() + 86_400 };
        let key = jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)
            .context("cannot sign a Centrifugo token")
    }
}

/// The `connect` command (request id 1).
pub(crate) fn connect_command(token: &str) -> String {
    serde_json::json!({ "id": 1, "connect": { "token": token } }).to_string()
}

/// The `subscribe` command (request id 2).
pub(crate) fn subscribe_command(channel: &str) -> String {
    serde_json::json!({ "id": 2, "subscribe": { "channel": channel } }).to_string()
}

/// Whether a text frame holds a ping (an empty object on a line of its own).
pub(crate) fn has_ping(text: &str) -> bool {
    text.split('\n').any(|line| line.trim() == "{}")
}

/// Reads one line of a frame: `Ok(true)` if it is the reply to `id`, an error if that
/// reply is an error.
pub(crate) fn is_reply_to(line: &str, id: u64) -> anyhow::Result<bool> {
    let Ok(reply) = serde_json::from_str::<serde_json::Value>(line) else {
        anyhow::bail!("unreadable reply: {line}");
    };
    if reply["id"].as_u64() != Some(id) {
        return Ok(false);
    }
    if let Some(error) = reply.get("error") {
        anyhow::bail!("Centrifugo refused command {id}: {error}");
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hs256_with_the_user_as_subject() {
        let c = Centrifugo { secret: "s3cret".into(), channel: "c".into() };
        let token = c.token("m7").unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.required_spec_claims.clear();
        let key = jsonwebtoken::DecodingKey::from_secret(b"s3cret");
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["sub"], "m7");
    }

    #[test]
    fn replies_are_found_by_id_and_errors_refused() {
        assert!(is_reply_to(r#"{"id":1,"connect":{"client":"x"}}"#, 1).unwrap());
        assert!(!is_reply_to(r#"{"id":2,"subscribe":{}}"#, 1).unwrap());
        assert!(!is_reply_to("{}", 1).unwrap());
        assert!(is_reply_to(r#"{"id":1,"error":{"code":109,"message":"token expired"}}"#, 1).is_err());
        assert!(has_ping("{\"id\":3,\"publish\":{}}\n{}"));
        assert!(!has_ping("{\"id\":3,\"publish\":{}}"));
    }
}
