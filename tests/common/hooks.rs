//! A webhook receiver: a real HTTP server on loopback that records what it
//! is sent and answers as the test scripts it (a status, or a delay first).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// At once, with this status.
    Status(u16),
    /// After this long, with this status (longer than the node's timeout: a timeout).
    Slow(Duration, u16),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// `Weft-Event-Id`.
    pub id: String,
    /// `Weft-Event-Type`.
    pub kind: String,
    /// `Weft-Delivery-Attempt`.
    pub attempt: u32,
    /// `Weft-Signature`.
    pub signature: String,
    /// The raw body.
    pub raw: Bytes,
    /// The body, parsed.
    pub body: Value,
    /// What it was answered.
    pub answered: u16,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Answer>,
    /// Bodies whose `data.message.body` equals this are always answered 500.
    poison: Option<String>,
    /// When the script is empty.
    fallback: Option<Answer>,
}

/// The receiver: `url` to register, `received()` to look at.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:port/hook`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Starts a receiver that answers 200 unless scripted otherwise.
    pub async fn start() -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app =
            axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inner }
    }

    /// The next requests are answered these ways, in order.
    pub fn script(&self, answers: &[Answer]) {
        self.inner.lock().unwrap().script.extend(answers.iter().copied());
    }

    /// Once the script is spent, every request is answered this way.
    pub fn fallback(&self, answer: Answer) {
        self.inner.lock().unwrap().fallback = Some(answer);
    }

    /// Messages with this body are always refused (500).
    pub fn poison(&self, body: &str) {
        self.inner.lock().unwrap().poison = Some(body.to_owned());
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// What was received and answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| (200..300).contains(&r.answered)).collect()
    }

    /// Waits (at most `limit`) until `check` holds for what was received.
    pub async fn wait(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received();
            if check(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "timed out waiting until {what}; got {:#?}", summary(&got));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Id, type, attempt and answer of each request (for failure messages).
pub fn summary(got: &[Received]) -> Vec<String> {
    got.iter().map(|r| format!("{} {} #{} -> {}", r.kind, r.id, r.attempt, r.answered)).collect()
}

async fn receive(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let answer = {
        let mut inner = inner.lock().unwrap();
        let poisoned = inner.poison.as_deref().is_some_and(|p| body["data"]["message"]["body"] == p);
        if poisoned {
            Answer::Status(500)
        } else {
            inner.script.pop_front().or(inner.fallback).unwrap_or(Answer::Status(200))
        }
    };
    let (status, wait) = match answer {
        Answer::Status(s) => (s, None),
        Answer::Slow(wait, s) => (s, Some(wait)),
    };
    // Recorded as it arrives (a slow answer is still on its way when the next attempt comes).
    let received = Received {
        id: header("weft-event-id"),
        kind: header("weft-event-type"),
        attempt: header("weft-delivery-attempt").parse().unwrap_or(0),
        signature: header("weft-signature"),
        raw: raw.clone(),
        body,
        answered: status,
        at: Instant::now(),
    };
    inner.lock().unwrap().received.push(received);
    if let Some(wait) = wait {
        tokio::time::sleep(wait).await;
    }
    StatusCode::from_u16(status).unwrap()
}
