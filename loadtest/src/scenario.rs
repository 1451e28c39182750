//! The scenarios: set up over REST, open the sockets, run, check the counts.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::ensure;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::centrifugo::Centrifugo;
use crate::client::{Dialect, Outcome, Plan, Target};
use crate::node::{AppToken, Node};
use crate::proc::Watched;
use crate::receiver::{Receiver, WebhookStats, Window};
use crate::report::{Check, Report, Run};
use crate::run::{self, Jobs, Ran, Timing};
use crate::seqset::SeqSet;
use crate::socket;

/// REST calls in flight at once while setting up.
pub(crate) const SETUP_CONCURRENCY: usize = 32;

/// What every scenario is given.
#[derive(Clone, Debug)]
pub struct Load {
    /// The node under test.
    pub node: Node,
    /// Target sends per second over all senders; 0 = as fast as the windows allow.
    pub rate: f64,
    /// Unacknowledged sends per socket at most.
    pub window: usize,
    /// Size of each message body, in bytes.
    pub body_bytes: usize,
    /// WebSocket handshakes in flight at once.
    pub connect_concurrency: usize,
    /// Warm-up, measured window, drain.
    pub timing: Timing,
    /// The node is Centrifugo, not weft (`fanout` and `cluster` only).
    pub centrifugo: Option<Centrifugo>,
    /// The server's processes, whose CPU the measured window used.
    pub watched: Watched,
    /// `fanout`, `cluster`, `dm`: register a webhook for every event (`["*"]`) at a
    /// receiver inside the generator just before the run (`--webhook`).
    pub webhook: bool,
    /// After sending stopped, how long to wait at most for the acknowledged
    /// messages' `message.created` events.
    pub webhook_drain: Duration,
}

impl Load {
    /// The plan of a sending socket, `index` of `senders` sharing the rate.
    pub(crate) fn sender(
        &self,
        target: Target,
        index: usize,
        senders: usize,
        audience: u64,
        tag: String,
    ) -> Plan {
        let rate = self.rate / senders as f64;
        // Paced sockets start spread over one period (at most 10 s), not all at once.
        let period = if rate > 0.0 { (1.0 / rate).min(10.0) } else { 0.0 };
        let offset = Duration::from_secs_f64(period * index as f64 / senders as f64);
        Plan { target, rate, window: self.window, record: false, audience, offset, tag }
    }

    pub(crate) fn run_info(&self, scenario: &'static str, setup: String) -> Run<'static> {
        Run {
            scenario,
            server: if self.centrifugo.is_some() { "centrifugo" } else { "weft" },
            setup,
            target_rate: self.rate,
            window: self.window,
            warmup_secs: self.timing.warmup.as_secs_f64(),
            measured_secs: self.timing.measure.as_secs_f64(),
        }
    }

    /// A user token per user, `SETUP_CONCURRENCY` calls at a time, in order.
    async fn tokens(
        &self,
        app: &AppToken,
        users: &[String],
        chat: Option<u64>,
    ) -> anyhow::Result<Vec<String>> {
        let node = &self.node;
        futures::stream::iter(users)
            .map(|user| async move {
                if let Some(chat) = chat {
                    node.add_member(app, chat, user).await?;
                }
                node.user_token(app, user).await
            })
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await
    }

    pub(crate) async fn open(&self, tokens: &[String]) -> anyhow::Result<Vec<socket::Socket>> {
        self.open_on(&self.node, tokens).await
    }

    /// The jobs of a run against this load's server (with the receiver's count in
    /// the progress lines, if there is one).
    pub(crate) fn jobs(&self, jobs: Vec<(socket::Socket, Plan)>, receiver: Option<&Receiver>) -> Jobs {
        let dialect = match &self.centrifugo {
            Some(c) => Dialect::Centrifugo { channel: c.channel.clone() },
            None => Dialect::Weft,
        };
        let webhook_events = receiver.map(Receiver::posts);
        Jobs { jobs, dialect, watched: self.watched.clone(), webhook_events }
    }

    /// With `--webhook`: a receiver, and a webhook of the application for every event
    /// pointing at it.
    async fn hook(&self, app: &AppToken) -> anyhow::Result<Option<Receiver>> {
        if !self.webhook {
            return Ok(None);
        }
        let mut receiver = Receiver::start().await?;
        receiver.register(&self.node, app, &["*"]).await?;
        Ok(Some(receiver))
    }

    /// Centrifugo sessions of `users` on `node`'s spread, subscribed to the channel if `subscribe`.
    async fn open_centrifugo(
        &self,
        centrifugo: &Centrifugo,
        node: &Node,
        users: &[String],
        subscribe: bool,
    ) -> anyhow::Result<Vec<socket::Socket>> {
        let sessions = users
            .iter()
            .map(|user| {
                Ok(socket::CentrifugoSession {
                    url: node.centrifugo_url()?,
                    token: centrifugo.token(user)?,
                    channel: subscribe.then(|| centrifugo.channel.clone()),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!("weft-load: opening {} Centrifugo sessions", sessions.len());
        socket::open_all_centrifugo(sessions, self.connect_concurrency).await
    }

    async fn open_on(&self, node: &Node, tokens: &[String]) -> anyhow::Result<Vec<socket::Socket>> {
        let urls = tokens.iter().map(|jwt| node.ws_url(jwt)).collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!("weft-load: opening {} WebSockets", urls.len());
        socket::open_all(urls, self.connect_concurrency).await
    }
}

/// One chat of `members` members, each with a receiving socket; `senders` of
/// them also have a second socket that sends to the chat. Every receiving
/// socket should get every message (the node skips only the sending session).
#[derive(Clone, Copy, Debug)]
pub struct Fanout {
    /// Members, each with a receiving socket.
    pub members: usize,
    /// Members that also send, from a socket of their own.
    pub senders: usize,
    /// The `cluster` scenario: senders on the first node of the spread list,
    /// receivers spread over the others, so every delivery crosses nodes.
    pub apart: bool,
}

impl Fanout {
    /// Sets up, runs and checks.
    pub async fn run(&self, load: &Load) -> anyhow::Result<Report> {
        let Fanout { members, senders, apart } = *self;
        ensure!(members >= 1, "--members must be at least 1");
        ensure!((1..=members).contains(&senders), "--senders must be 1 to --members");
        eprintln!("weft-load: fanout setup: 1 chat, {members} members, {senders} senders");
        let users: Vec<String> = (0..members).map(|i| format!("m{i}")).collect();
        let (receiving, sending) =
            if apart { load.node.split_spread()? } else { (load.node.clone(), load.node.clone()) };
        let mut receiver = None;
        // Where sender j's sends go: weft's chat, or (Centrifugo) stream j + 1 of the channel.
        let (sockets, target): (_, Box<dyn Fn(usize) -> Target>) = match &load.centrifugo {
            None => {
                let app = load.node.create_app("weft-load fanout").await?;
                let chat = load.node.create_chat(&app).await?;
                let tokens = load.tokens(&app, &users, Some(chat)).await?;
                let mut sockets = load.open_on(&receiving, &tokens).await?;
                sockets.extend(load.open_on(&sending, &tokens[..senders]).await?);
                receiver = load.hook(&app).await?;
                (sockets, Box::new(move |_| Target::Chat(chat)))
            }
            Some(centrifugo) => {
                ensure!(!load.webhook, "--webhook runs against weft only");
                let mut sockets = load.open_centrifugo(centrifugo, &receiving, &users, true).await?;
                sockets.extend(load.open_centrifugo(centrifugo, &sending, &users[..senders], false).await?);
                (sockets, Box::new(|j| Target::Chat(j as u64 + 1)))
            }
        };

        let audience = members as u64;
        let plans = (0..members)
            .map(|i| Plan {
                target: Target::Listen,
                rate: 0.0,
                window: 0,
                record: true,
                audience: 0,
                offset: Duration::ZERO,
                tag: users[i].clone(),
            })
            .chain((0..senders).map(|j| load.sender(target(j), j, senders, audience, users[j].clone())));
        let jobs = load.jobs(sockets.into_iter().zip(plans).collect(), receiver.as_ref());
        let ran = run::run(jobs, 0, load.timing, load.body_bytes).await?;

        let (receivers, sending) = ran.outcomes.split_at(members);
        let sent = acked(sending);
        let mut check = Check::default();
        for (receiving, user) in receivers.iter().zip(&users) {
            compare(&mut check, &sent, receiving, user);
        }
        let webhook = match &mut receiver {
            Some(receiver) => Some(webhook_stats(receiver, &sent, &ran, load).await),
            None => None,
        };
        let hooked = if webhook.is_some() { " webhook=*" } else { "" };
        let setup = format!("members={members} senders={senders}{hooked}");
        let scenario = if apart { "cluster" } else { "fanout" };
        let report = Report::new(load.run_info(scenario, setup), &ran.outcomes, ran.cpu, check);
        Ok(Report { webhook, ..report })
    }
}

/// `pairs` pairs of users, each pair in its own direct chat, which the first
/// send of each side finds or creates (`recipients: [peer]`); both sides then
/// send to it and receive the other's messages.
#[derive(Clone, Copy, Debug)]
pub struct Dm {
    /// Pairs of users.
    pub pairs: usize,
}

impl Dm {
    /// Sets up, runs and checks.
    pub async fn run(&self, load: &Load) -> anyhow::Result<Report> {
        let pairs = self.pairs;
        ensure!(pairs >= 1, "--pairs must be at least 1");
        ensure!(load.centrifugo.is_none(), "dm runs against weft only (--target weft)");
        eprintln!("weft-load: dm setup: {pairs} pairs, {} users", 2 * pairs);
        let app = load.node.create_app("weft-load dm").await?;
        // Sides of pair i: a{i} at 2i, b{i} at 2i + 1.
        let users: Vec<String> = (0..pairs).flat_map(|i| [format!("a{i}"), format!("b{i}")]).collect();
        let tokens = load.tokens(&app, &users, None).await?;
        let sockets = load.open(&tokens).await?;
        let mut receiver = load.hook(&app).await?;

        let plans = users.iter().enumerate().map(|(k, user)| {
            let peer = users[k ^ 1].clone();
            Plan { record: true, ..load.sender(Target::Direct(peer), k, users.len(), 1, user.clone()) }
        });
        let jobs = load.jobs(sockets.into_iter().zip(plans).collect(), receiver.as_ref());
        let ran = run::run(jobs, users.len() as u64, load.timing, load.body_bytes).await?;
        let outcomes = &ran.outcomes;

        let mut check = Check::default();
        for (pair, names) in outcomes.chunks_exact(2).zip(users.chunks_exact(2)) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.chat.is_none() || a.chat != b.chat {
                check.direct_chat_mismatches += 1;
                eprintln!(
                    "weft-load: {} and {} sent to chats {:?} and {:?}",
                    names[0], names[1], a.chat, b.chat
                );
            }
            compare(&mut check, &acked([a]), b, &names[1]);
            compare(&mut check, &acked([b]), a, &names[0]);
        }
        let webhook = match &mut receiver {
            Some(receiver) => Some(webhook_stats(receiver, &acked(outcomes), &ran, load).await),
            None => None,
        };
        let hooked = if webhook.is_some() { " webhook=*" } else { "" };
        let info = load.run_info("dm", format!("pairs={pairs}{hooked}"));
        let report = Report::new(info, outcomes, ran.cpu, check);
        Ok(Report { webhook, ..report })
    }
}

/// Waits for the `message.created` events of the acknowledged sends `sent` (at most
/// the load's webhook drain), reads the receiver's figures and deletes its webhook.
pub(crate) async fn webhook_stats(
    receiver: &mut Receiver,
    sent: &HashMap<u64, SeqSet>,
    ran: &Ran,
    load: &Load,
) -> WebhookStats {
    let expected = sent.values().map(|s| s.iter().count() as u64).sum();
    let drained = receiver.drain(expected, load.webhook_drain).await;
    let from = ran.started + load.timing.warmup;
    let window = Window { epoch: ran.epoch, from, until: from + load.timing.measure };
    let mut stats = receiver.stats(sent, &window, drained);
    stats.node_notices_dropped = receiver.node_dropped(&load.node).await;
    receiver.unregister(&load.node).await;
    eprintln!(
        "weft-load: webhook: {} POSTs ({:.0}/s in the window), {} of {} messages missing (the node dropped {} events before its queue), {} duplicates, {} out of order, by type {:?}",
        stats.posts,
        stats.events_per_sec,
        stats.missing,
        stats.messages,
        stats.node_notices_dropped.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        stats.duplicates,
        stats.out_of_order,
        stats.by_type
    );
    stats
}

/// The acknowledged sends of `senders`, per chat.
pub(crate) fn acked<'a>(senders: impl IntoIterator<Item = &'a Outcome>) -> HashMap<u64, SeqSet> {
    let mut sent: HashMap<u64, SeqSet> = HashMap::new();
    for &(chat, seq) in senders.into_iter().flat_map(|o| &o.acked) {
        sent.entry(chat).or_default().insert(seq);
    }
    sent
}

/// Counts what `user`'s socket missed of `expected`, and what it got that was not expected.
fn compare(check: &mut Check, expected: &HashMap<u64, SeqSet>, got: &Outcome, user: &str) {
    let empty = SeqSet::default();
    for (chat, want) in expected {
        let have = got.received.get(chat).unwrap_or(&empty);
        check.missing += want.iter().filter(|&seq| !have.contains(seq)).count() as u64;
    }
    for (chat, have) in &got.received {
        let want = expected.get(chat).unwrap_or(&empty);
        for seq in have.iter().filter(|&seq| !want.contains(seq)) {
            check.unexpected += 1;
            if check.unexpected <= 5 {
                eprintln!(
                    "weft-load: {user} received chat {chat} seq {seq}, which no acknowledged send called for"
                );
            }
        }
    }
}
