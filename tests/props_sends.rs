//! A model-based property test of numbering and idempotency, on one embedded
//! node: random runs of WebSocket sends, REST posts, retries, pipelined
//! duplicates of one key and concurrent posts of one key, each checked
//! against a model that is a counter per chat and a map from (sender, key) to
//! the first answer.
//!
//! Properties: each chat's messages are numbered 1, 2, 3… with no gap and no
//! number twice; a key's retry gets the first answer's number and never a
//! second one (over WebSocket whatever it carries; over REST the same message,
//! or `idempotency_key_reused` for another one); the stored history is the model's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;
mod props_support;

use std::collections::HashMap;
use std::time::Duration;

use common::server::{Mode, TestServer, code};
use common::ws::{Client, history, join, user_token};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

const CHATS: usize = 3;
const USERS: [&str; 2] = ["alice", "bob"];

/// One step a client takes.
#[derive(Clone, Debug)]
enum Op {
    /// A WebSocket `send` by `USERS[user]` with `client_msg_id` `k<key>`.
    Send { user: usize, chat: usize, key: u8, body: u8 },
    /// The same `send` written `copies` times back to back, before any answer.
    Burst { user: usize, chat: usize, key: u8, body: u8, copies: usize },
    /// A REST post, as `USERS[user]` or the backend itself, with an `Idempotency-Key`
    /// or none; `copies` of it at once.
    Post { user: Option<usize>, chat: usize, key: Option<u8>, body: u8, copies: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let chat = 0..CHATS;
    // Few keys and bodies, so that retries, reuses and clashes are common.
    let (key, body) = (0..4u8, 0..2u8);
    prop_oneof![
        4 => (user.clone(), chat.clone(), key.clone(), body.clone())
            .prop_map(|(user, chat, key, body)| Op::Send { user, chat, key, body }),
        1 => (user.clone(), chat.clone(), key.clone(), body.clone(), 2..4usize)
            .prop_map(|(user, chat, key, body, copies)| Op::Burst { user, chat, key, body, copies }),
        3 => (proptest::option::of(user), chat, proptest::option::of(key), body, prop_oneof![3 => Just(1), 1 => 2..4usize])
            .prop_map(|(user, chat, key, body, copies)| Op::Post { user, chat, key, body, copies }),
    ]
}

/// What the node must have done: the numbers drawn per chat, and each key's first answer.
#[derive(Default)]
struct Model {
    /// Per chat, the bodies stored in number order (number = index + 1).
    stored: [Vec<String>; CHATS],
    /// (sender, key) → (chat index, number, body) of the key's first message.
    first: HashMap<(Option<usize>, u8), (usize, u64, String)>,
}

impl Model {
    /// Stores a new message; returns its number.
    fn number(&mut self, chat: usize, body: String) -> u64 {
        self.stored[chat].push(body);
        self.stored[chat].len() as u64
    }
}

/// One run's application: its chats, and a connected client per user.
struct World<'a> {
    server: &'a TestServer,
    token: String,
    chats: [u64; CHATS],
    clients: Vec<Client>,
    next_id: u64,
}

fn body_text(user: Option<usize>, body: u8) -> String {
    format!("{} says {body}", user.map_or("the backend", |u| USERS[u]))
}

impl World<'_> {
    /// Sends `frame` on `user`'s socket until it is not answered `in_flight`
    /// (a retry while the first send commits, as a client would); returns (chat, seq).
    async fn send(&mut self, user: usize, frame: Value) -> Result<(u64, u64), TestCaseError> {
        for _ in 0..200 {
            self.next_id += 1;
            let id = json!(self.next_id);
            let mut frame = frame.clone();
            frame["id"] = id.clone();
            self.clients[user].send(frame).await;
            let answer = self.clients[user].answer(&id).await;
            if let Some(result) = self.read_ack(&answer)? {
                return Ok(result);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(TestCaseError::fail("a send stayed in flight for 4 s"))
    }

    /// An ack's (chat, seq); `None` for `in_flight`; any other answer fails the run.
    fn read_ack(&self, answer: &Value) -> Result<Option<(u64, u64)>, TestCaseError> {
        if answer["type"] == "error" && answer["code"] == "in_flight" {
            return Ok(None);
        }
        prop_assert_eq!(&answer["type"], "ack", "{}", answer);
        Ok(Some((answer["chat"].as_u64().unwrap(), answer["seq"].as_u64().unwrap())))
    }

    fn send_frame(&self, chat: usize, key: u8, body: &str) -> Value {
        json!({"type": "send", "chat": self.chats[chat], "body": body, "client_msg_id": format!("k{key}")})
    }

    /// Applies `op` to the node and the model, and checks the node's answers.
    async fn step(&mut self, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Send { user, chat, key, body } => {
                let text = body_text(Some(user), body);
                let acked = self.send(user, self.send_frame(chat, key, &text)).await?;
                self.expect_ack(model, user, chat, key, text, acked)?;
            }
            Op::Burst { user, chat, key, body, copies } => {
                let text = body_text(Some(user), body);
                let frame = self.send_frame(chat, key, &text);
                let ids: Vec<u64> = (0..copies).map(|i| self.next_id + 1 + i as u64).collect();
                self.next_id += copies as u64;
                for id in &ids {
                    let mut frame = frame.clone();
                    frame["id"] = json!(id);
                    self.clients[user].send(frame).await;
                }
                let mut acks = Vec::new();
                for id in &ids {
                    let answer = self.clients[user].answer(&json!(id)).await;
                    match self.read_ack(&answer)? {
                        Some(acked) => acks.push(acked),
                        None => acks.push(self.send(user, frame.clone()).await?),
                    }
                }
                self.expect_ack(model, user, chat, key, text, acks[0])?;
                for acked in &acks {
                    prop_assert_eq!(acked, &acks[0], "every copy of one key gets one number");
                }
            }
            Op::Post { user, chat, key, body, copies } => {
                self.post(model, user, chat, key, body, copies).await?
            }
        }
        Ok(())
    }

    /// A WebSocket ack: the key's first answer, or the chat's next number.
    fn expect_ack(
        &self,
        model: &mut Model,
        user: usize,
        chat: usize,
        key: u8,
        body: String,
        acked: (u64, u64),
    ) -> Result<(), TestCaseError> {
        let expected = match model.first.get(&(Some(user), key)) {
            Some(&(first_chat, seq, _)) => (self.chats[first_chat], seq),
            None => {
                let seq = model.number(chat, body.clone());
                model.first.insert((Some(user), key), (chat, seq, body));
                (self.chats[chat], seq)
            }
        };
        prop_assert_eq!(acked, expected, "ack of k{} by {}", key, USERS[user]);
        Ok(())
    }

    /// REST posts, `copies` of them at once (each retried while `in_flight`).
    async fn post(
        &mut self,
        model: &mut Model,
        user: Option<usize>,
        chat: usize,
        key: Option<u8>,
        body: u8,
        copies: usize,
    ) -> Result<(), TestCaseError> {
        let text = body_text(user, body);
        let mut payload = json!({"body": text});
        if let Some(user) = user {
            payload["sender"] = json!(USERS[user]);
        }
        let url = self
            .server
            .url(&format!("/api/v1/applications/{}/chats/{}/messages", self.token, self.chats[chat]));
        let post_one = || async {
            loop {
                let mut request = self.server.http.post(&url).json(&payload);
                if let Some(key) = key {
                    request = request.header("idempotency-key", format!("k{key}"));
                }
                let (status, answer) = self.server.send(request).await;
                if status != 409 || code(&answer) != "in_flight" {
                    break (status, answer);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let answers = futures::future::join_all((0..copies).map(|_| post_one())).await;
        let first = key.and_then(|key| model.first.get(&(user, key)).cloned());
        let numbers: Vec<Option<u64>> = answers.iter().map(|(_, answer)| answer["number"].as_u64()).collect();
        match (key, first) {
            (_, Some((first_chat, seq, first_body))) if first_chat == chat && first_body == text => {
                for (status, answer) in &answers {
                    prop_assert_eq!(*status, 201, "{}", answer);
                    prop_assert_eq!(answer["number"].as_u64(), Some(seq), "a retry gets the first message");
                }
            }
            (_, Some(_)) => {
                for (status, answer) in &answers {
                    prop_assert_eq!((*status, code(answer)), (422, "idempotency_key_reused"), "{}", answer);
                }
            }
            (Some(key), None) => {
                let seq = model.number(chat, text.clone());
                for (status, answer) in &answers {
                    prop_assert_eq!(*status, 201, "{}", answer);
                }
                prop_assert!(numbers.iter().all(|n| *n == Some(seq)), "one key, one number: {:?}", numbers);
                model.first.insert((user, key), (chat, seq, text));
            }
            (None, None) => {
                let mut numbers: Vec<u64> = numbers.into_iter().flatten().collect();
                numbers.sort_unstable();
                let expected: Vec<u64> = (0..copies).map(|_| model.number(chat, text.clone())).collect();
                prop_assert_eq!(numbers, expected, "no key: each post its own next number");
            }
        }
        Ok(())
    }

    /// Every chat holds exactly the model's messages, numbered 1..=n.
    async fn check_history(&self, model: &Model) -> Result<(), TestCaseError> {
        for (i, chat) in self.chats.iter().enumerate() {
            let stored = history(self.server, &self.token, *chat, 0).await;
            let numbers: Vec<u64> = stored.keys().copied().collect();
            let expected: Vec<u64> = (1..=model.stored[i].len() as u64).collect();
            prop_assert_eq!(numbers, expected, "chat {} is numbered 1..=n with no gap", chat);
            let bodies: Vec<&String> = stored.values().map(|(_, body)| body).collect();
            prop_assert_eq!(bodies, model.stored[i].iter().collect::<Vec<_>>());
            let (_, view) =
                self.server.get(&format!("/api/v1/applications/{}/chats/{chat}", self.token)).await;
            prop_assert_eq!(view["messages_count"].as_u64(), Some(model.stored[i].len() as u64));
        }
        Ok(())
    }
}

/// One run: a fresh application, so runs (and shrinking) never see each other.
async fn run(server: &TestServer, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let token = server.new_app().await;
    let mut chats = [0; CHATS];
    for chat in &mut chats {
        *chat = server.new_chat(&token).await;
        for user in USERS {
            join(server, &token, *chat, user).await;
        }
    }
    let mut clients = Vec::new();
    for user in USERS {
        clients.push(Client::connect(server, &user_token(server, &token, user).await).await);
    }
    let mut world = World { server, token, chats, clients, next_id: 0 };
    let mut model = Model::default();
    for op in &ops {
        world.step(&mut model, op).await?;
    }
    world.check_history(&model).await?;
    for client in world.clients {
        client.close().await;
    }
    Ok(())
}

#[test]
fn numbers_and_retries_follow_the_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = runtime.block_on(TestServer::start(Mode::Embedded));
    // Each case starts an application and two sessions: a smaller budget than the pure codecs'.
    let config = proptest::test_runner::Config { failure_persistence: None, ..props_support::budget(48) };
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&vec(op(), 1..32), |ops| runtime.block_on(run(&server, ops)));
    runtime.block_on(server.stop());
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
