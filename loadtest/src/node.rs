//! The node under test and the REST calls that prepare a run.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

/// An application's token (its secret: it names the application in every path).
#[derive(Clone, Debug)]
pub struct AppToken(String);

/// A running weft node reached over loopback.
#[derive(Clone, Debug)]
pub struct Node {
    base: Url,
    http: reqwest::Client,
    admin_key: Option<String>,
    /// Where WebSockets go, in turn (the cluster scenario spreads them over nodes).
    spread: Vec<Url>,
    next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Whether sessions ask for batched frames (`?batch=1`).
    batch: bool,
}

#[derive(Deserialize)]
struct Created {
    token: String,
}

#[derive(Deserialize)]
struct WebhookCreated {
    id: String,
}

#[derive(Deserialize)]
struct Chat {
    number: u64,
}

#[derive(Deserialize)]
struct Numbered {
    number: u64,
}

impl Node {
    /// The node at `url` (`http://127.0.0.1:PORT`); any host but loopback is refused.
    pub fn new(url: &str, admin_key: Option<String>) -> anyhow::Result<Self> {
        let base = loopback_url(url)?;
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        Ok(Self { spread: vec![base.clone()], base, http, admin_key, next: Default::default(), batch: false })
    }

    /// (Nodes but the first, the first): for sockets that must sit apart.
    pub fn split_spread(&self) -> anyhow::Result<(Node, Node)> {
        if self.spread.len() < 2 {
            bail!("--spread must list at least two nodes");
        }
        let mut rest = self.clone();
        rest.spread = self.spread[1..].to_vec();
        rest.next = Default::default();
        let mut first = self.clone();
        first.spread = self.spread[..1].to_vec();
        first.next = Default::default();
        Ok((rest, first))
    }

    /// Sessions opened from now on ask for batched frames (`?batch=1`), or not.
    pub fn batched(mut self, batch: bool) -> Self {
        self.batch = batch;
        self
    }

    /// Spreads WebSockets over these nodes in turn (REST stays on `--url`).
    pub fn spread_over(mut self, urls: &[String]) -> anyhow::Result<Self> {
        if !urls.is_empty() {
            self.spread = urls.iter().map(|u| loopback_url(u)).collect::<anyhow::Result<_>>()?;
        }
        Ok(self)
    }
}

/// A loopback `http://` URL with a port; anything else is refused.
fn loopback_url(url: &str) -> anyhow::Result<Url> {
    let base = Url::parse(url).with_context(|| format!("--url {url} is not a URL"))?;
    if base.scheme() != "http" {
        bail!("--url must be http:// (got {})", base.scheme());
    }
    let host = base.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--url must name a loopback host (127.0.0.0/8, [::1] or localhost), not {host}");
    }
    if base.port_or_known_default().is_none() {
        bail!("--url {url} has no port");
    }
    Ok(base)
}

impl Node {
    fn url(&self, path: &str) -> anyhow::Result<Url> {
        Ok(self.base.join(path)?)
    }

    /// `POST /api/v1/applications`: a new application's token.
    pub async fn create_app(&self, name: &str) -> anyhow::Result<AppToken> {
        let mut request = self.http.post(self.url("/api/v1/applications")?).json(&json!({ "name": name }));
        if let Some(key) = &self.admin_key {
            request = request.bearer_auth(key);
        }
        let created: Created =
            expect(request.send().await, StatusCode::CREATED, "create an application").await?.json().await?;
        Ok(AppToken(created.token))
    }

    /// `POST .../webhooks`: registers a webhook of `events` (`["*"]`: all) at `url`;
    /// returns its id. The node must accept http:// loopback URLs
    /// (`WEFT_WEBHOOKS_ALLOW_HTTP=true WEFT_WEBHOOKS_ALLOW_PRIVATE=true`).
    pub async fn create_webhook(&self, app: &AppToken, url: &str, events: &[&str]) -> anyhow::Result<String> {
        let path = self.url(&format!("/api/v1/applications/{}/webhooks", app.0))?;
        let request = self.http.post(path).json(&json!({ "url": url, "events": events }));
        let created: WebhookCreated = expect(
            request.send().await,
            StatusCode::CREATED,
            "register a webhook (the node needs WEFT_WEBHOOKS_ALLOW_HTTP=true and WEFT_WEBHOOKS_ALLOW_PRIVATE=true)",
        )
        .await?
        .json()
        .await?;
        Ok(created.id)
    }

    /// `DELETE .../webhooks/:id`: nothing more is delivered to it (its queued events are dropped).
    pub async fn delete_webhook(&self, app: &AppToken, id: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("/api/v1/applications/{}/webhooks/{id}", app.0))?;
        expect(self.http.delete(url).send().await, StatusCode::NO_CONTENT, "delete a webhook").await?;
        Ok(())
    }

    /// `POST .../chats`: a new chat's number.
    pub async fn create_chat(&self, app: &AppToken) -> anyhow::Result<u64> {
        let url = self.url(&format!("/api/v1/applications/{}/chats", app.0))?;
        let chat: Chat = expect(self.http.post(url).send().await, StatusCode::CREATED, "create a chat")
            .await?
            .json()
            .await?;
        Ok(chat.number)
    }

    /// `PUT .../chats/:number/members/:user`.
    pub async fn add_member(&self, app: &AppToken, chat: u64, user: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("/api/v1/applications/{}/chats/{chat}/members/{user}", app.0))?;
        expect(self.http.put(url).send().await, StatusCode::NO_CONTENT, "add a member").await?;
        Ok(())
    }

    /// `POST .../users/:user/tokens`: a user token (JWT).
    pub async fn user_token(&self, app: &AppToken, user: &str) -> anyhow::Result<String> {
        let url = self.url(&format!("/api/v1/applications/{}/users/{user}/tokens", app.0))?;
        let request = self.http.post(url).json(&json!({}));
        let created: Created =
            expect(request.send().await, StatusCode::CREATED, "mint a user token").await?.json().await?;
        Ok(created.token)
    }

    /// `POST .../chats/:number/messages`: posts `body`, returns its number once persisted.
    pub async fn post_message(&self, app: &AppToken, chat: u64, body: &str) -> anyhow::Result<u64> {
        let url = self.url(&format!("/api/v1/applications/{}/chats/{chat}/messages", app.0))?;
        let request = self.http.post(url).json(&json!({ "body": body }));
        let created: Numbered =
            expect(request.send().await, StatusCode::CREATED, "post a message").await?.json().await?;
        Ok(created.number)
    }

    /// `GET .../chats/:number/messages?per_page&before`: the numbers of one page,
    /// newest first (no `before`: the newest page).
    pub async fn message_numbers(
        &self,
        app: &AppToken,
        chat: u64,
        per_page: u64,
        before: Option<u64>,
    ) -> anyhow::Result<Vec<u64>> {
        let mut url = self.url(&format!("/api/v1/applications/{}/chats/{chat}/messages", app.0))?;
        url.query_pairs_mut().append_pair("per_page", &per_page.to_string());
        if let Some(before) = before {
            url.query_pairs_mut().append_pair("before", &before.to_string());
        }
        let page: Vec<Numbered> = expect(self.http.get(url).send().await, StatusCode::OK, "list messages")
            .await?
            .json()
            .await
            .context("cannot read a page of messages")?;
        Ok(page.into_iter().map(|m| m.number).collect())
    }

    /// `GET /metrics` of the node (REST node), as text; `token` or the admin key as bearer.
    pub async fn metrics(&self, token: Option<&str>) -> anyhow::Result<String> {
        let mut request = self.http.get(self.url("/metrics")?);
        if let Some(bearer) = token.or(self.admin_key.as_deref()) {
            request = request.bearer_auth(bearer);
        }
        Ok(expect(request.send().await, StatusCode::OK, "read /metrics").await?.text().await?)
    }

    /// The WebSocket URL of a Centrifugo session (`/connection/websocket`), on the next
    /// node of the spread.
    pub fn centrifugo_url(&self) -> anyhow::Result<String> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.spread.len().max(1);
        let mut url = self.spread.get(n).unwrap_or(&self.base).join("/connection/websocket")?;
        url.set_scheme("ws").map_err(|()| anyhow::anyhow!("cannot make a ws:// URL of {}", self.base))?;
        Ok(url.into())
    }

    /// Whether `GET /readyz` answers 200 within 5 s.
    pub async fn ready(&self) -> bool {
        let Ok(url) = self.url("/readyz") else { return false };
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.http.get(url).send()).await,
            Ok(Ok(response)) if response.status() == StatusCode::OK
        )
    }

    /// The WebSocket URL of a session of the token's user.
    pub fn ws_url(&self, jwt: &str) -> anyhow::Result<String> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.spread.len().max(1);
        let mut url = self.spread.get(n).unwrap_or(&self.base).join("/ws")?;
        url.set_scheme("ws").map_err(|()| anyhow::anyhow!("cannot make a ws:// URL of {}", self.base))?;
        let batch = if self.batch { "&batch=1" } else { "" };
        url.set_query(Some(&format!("token={jwt}{batch}")));
        Ok(url.into())
    }
}

/// The response if it has `status`, else an error with the body the node sent.
async fn expect(
    sent: reqwest::Result<reqwest::Response>,
    status: StatusCode,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    let response = sent.with_context(|| format!("cannot {what}"))?;
    if response.status() == status {
        return Ok(response);
    }
    let got = response.status();
    let body = response.text().await.unwrap_or_default();
    bail!("cannot {what}: {got} {body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_accepted() {
        for ok in ["http://127.0.0.1:8080", "http://127.0.0.9:1", "http://localhost:80", "http://[::1]:8080"]
        {
            assert!(Node::new(ok, None).is_ok(), "{ok}");
        }
        for bad in ["http://10.0.0.1:8080", "http://example.com:80", "https://127.0.0.1:1", "nonsense"] {
            assert!(Node::new(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_ws_url_carries_the_token() {
        let node = Node::new("http://127.0.0.1:8080", None).unwrap();
        assert_eq!(node.ws_url("a.b.c").unwrap(), "ws://127.0.0.1:8080/ws?token=a.b.c");
        let node = node.batched(true);
        assert_eq!(node.ws_url("a.b.c").unwrap(), "ws://127.0.0.1:8080/ws?token=a.b.c&batch=1");
    }
}
