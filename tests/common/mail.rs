//! Mailpit (the test SMTP server) read back through its HTTP API.

use std::time::Duration;

use serde_json::Value;

/// Mailpit's API base, checked to answer (a clear failure if it does not).
pub async fn mailpit_api(http: &reqwest::Client) -> (String, String) {
    let (smtp, api) = super::server::mailpit();
    let ready = http.get(format!("{api}/readyz")).send().await;
    assert!(
        ready.as_ref().is_ok_and(|r| r.status().is_success()),
        "Mailpit does not answer at {api}/readyz ({ready:?}): start it with `bash scripts/services.sh up`"
    );
    (smtp, api)
}

/// A fresh address nobody else sends to.
pub fn unique_address() -> String {
    format!("digest-{:016x}@example.com", rand::random::<u64>())
}

/// The one message Mailpit holds for `to`, in full (waits up to 10 s for it).
pub async fn received(http: &reqwest::Client, api: &str, to: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = search(http, api, to).await;
        let messages = found["messages"].as_array().cloned().unwrap_or_default();
        if let [one] = messages.as_slice() {
            let id = one["ID"].as_str().unwrap();
            return http
                .get(format!("{api}/api/v1/message/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        }
        assert!(messages.len() <= 1, "{} messages to {to}: {found}", messages.len());
        assert!(tokio::time::Instant::now() < deadline, "no message to {to} reached Mailpit within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes what Mailpit holds for `to`.
pub async fn delete(http: &reqwest::Client, api: &str, to: &str) {
    let resp = http
        .delete(format!("{api}/api/v1/search"))
        .query(&[("query", format!("to:\"{to}\""))])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{resp:?}");
}

/// What Mailpit's search finds for `to` now (`{"messages":[…]}`).
pub async fn search(http: &reqwest::Client, api: &str, to: &str) -> Value {
    http.get(format!("{api}/api/v1/search"))
        .query(&[("query", format!("to:\"{to}\""))])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
