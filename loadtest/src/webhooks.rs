//! The `webhooks` scenario: how fast a node delivers `message.created` webhooks,
//! and how late.
//!
//! The generator starts its own receiver (see [`crate::receiver`]), creates an
//! application with a webhook for `message.created` pointing at it, and `chats`
//! chats with one member each, who sends into it from a WebSocket (the send path
//! of the other scenarios): the rate is shared by the senders, or each sends as
//! fast as its window allows (`--rate 0`). The node keeps one lane per chat, so
//! the chats' events are delivered in parallel and each chat's in order.
//!
//! After the warm-up, the measured window and the drain of the acks, the receiver
//! waits (at most `--webhook-drain-secs`) for the event of every acknowledged
//! message, then counts what came: POSTs per second in the measured window,
//! missing messages, duplicate event ids, out-of-order messages per chat, and the
//! latency from each message's `sent_at` to its webhook (with the send→ack
//! latency beside it). When the node fell behind, how long after sending stopped
//! the last event came and how fast the backlog went (`drain events/s`: the node
//! delivering and doing nothing else).
//!
//! `--baseline` runs the same sends with no webhook: the node CPU they cost alone,
//! so that the CPU of a webhook event is the difference.

use std::collections::BTreeMap;

use anyhow::ensure;
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use crate::client::{Plan, Target};
use crate::receiver::{MESSAGE_CREATED, Receiver, WebhookStats};
use crate::report::{Latency, median};
use crate::run;
use crate::scenario::{Load, SETUP_CONCURRENCY, acked, webhook_stats};

/// The `scenario` of webhooks results (how `weft-load median` tells them apart).
pub const SCENARIO: &str = "webhooks";

/// The header of the markdown table that [`WebhooksReport::row`] and [`median_row`] fill.
pub const HEADER: &str = "\
| scenario | setup | target msg/s | sent msg/s | webhook events/s | sent_at→webhook p50 ms | p99 ms | max ms | ack p50 ms | ack p99 ms | node CPU µs per event | last event after s | drain events/s | errors | missing | duplicates | out of order |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
";

/// `chats` chats of one sending member each, and a webhook for `message.created`.
#[derive(Clone, Copy, Debug)]
pub struct Webhooks {
    /// Chats (lanes of the webhook), each with its own sender.
    pub chats: usize,
    /// Register no webhook: the same sends alone, for the node CPU they cost
    /// without webhooks (setup `chats=N baseline`).
    pub baseline: bool,
}

/// The figures of a webhooks run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhooksReport {
    /// Always [`SCENARIO`].
    pub scenario: String,
    /// Its parameters, e.g. `chats=16`.
    pub setup: String,
    /// Target sends per second over all senders; 0 = as fast as acks allow.
    pub target_rate: f64,
    /// Unacknowledged sends per socket at most.
    pub window: usize,
    /// Seconds of warm-up.
    pub warmup_secs: f64,
    /// Seconds measured.
    pub measured_secs: f64,
    /// Acknowledged sends that were sent in the measured window.
    pub sent: u64,
    /// `sent` per second.
    pub sent_per_sec: f64,
    /// Send→ack latency of those.
    pub ack_latency_ms: Latency,
    /// Acknowledged sends over the whole run.
    pub acked_total: u64,
    /// Errors by kind (error frames, lost sockets), over the whole run.
    pub errors: BTreeMap<String, u64>,
    /// What the receiver got.
    pub webhook: WebhookStats,
    /// CPU seconds the node used in the measured window (`--server-pid`).
    pub node_cpu_secs: Option<f64>,
}

impl Webhooks {
    /// Sets up, runs, drains and counts.
    pub async fn run(&self, load: &Load) -> anyhow::Result<WebhooksReport> {
        let Webhooks { chats, baseline } = *self;
        ensure!(chats >= 1, "--chats must be at least 1");
        ensure!(load.centrifugo.is_none(), "webhooks runs against weft only (--target weft)");
        eprintln!("weft-load: webhooks setup: {chats} chats, a sender each");
        let node = &load.node;
        let mut receiver = Receiver::start().await?;
        let app = node.create_app("weft-load webhooks").await?;
        if !baseline {
            receiver.register(node, &app, &[MESSAGE_CREATED]).await?;
        }
        let users: Vec<String> = (0..chats).map(|i| format!("s{i}")).collect();
        let (numbers, tokens): (Vec<u64>, Vec<String>) = futures::stream::iter(&users)
            .map(|user| {
                let app = &app;
                async move {
                    let chat = node.create_chat(app).await?;
                    node.add_member(app, chat, user).await?;
                    Ok::<_, anyhow::Error>((chat, node.user_token(app, user).await?))
                }
            })
            .buffered(SETUP_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .unzip();
        let sockets = load.open(&tokens).await?;
        let plans =
            numbers.iter().zip(&users).enumerate().map(|(i, (&chat, user))| -> Plan {
                load.sender(Target::Chat(chat), i, chats, 0, user.clone())
            });
        let jobs = load.jobs(sockets.into_iter().zip(plans).collect(), Some(&receiver));
        let ran = run::run(jobs, 0, load.timing, load.body_bytes).await?;
        let sent = acked(&ran.outcomes);
        let webhook = if baseline {
            WebhookStats::default()
        } else {
            webhook_stats(&mut receiver, &sent, &ran, load).await
        };

        let mut errors = BTreeMap::new();
        for (kind, n) in ran.outcomes.iter().flat_map(|o| &o.errors) {
            *errors.entry(kind.clone()).or_default() += n;
        }
        let info =
            load.run_info(SCENARIO, format!("chats={chats}{}", if baseline { " baseline" } else { "" }));
        let in_window: u64 = ran.outcomes.iter().map(|o| o.sent_in_window).sum();
        Ok(WebhooksReport {
            scenario: SCENARIO.to_owned(),
            setup: info.setup,
            target_rate: info.target_rate,
            window: info.window,
            warmup_secs: info.warmup_secs,
            measured_secs: info.measured_secs,
            sent: in_window,
            sent_per_sec: if info.measured_secs > 0.0 { in_window as f64 / info.measured_secs } else { 0.0 },
            ack_latency_ms: Latency::of_micros(
                ran.outcomes.iter().flat_map(|o| o.ack_latencies_us.iter().copied()),
            ),
            acked_total: ran.outcomes.iter().map(|o| o.acked.len() as u64).sum(),
            errors,
            webhook,
            node_cpu_secs: ran.cpu.nodes,
        })
    }
}

impl WebhooksReport {
    /// Every error: error frames, lost sockets, and POSTs the receiver could not read.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.webhook.unreadable
    }

    /// This run as one markdown row under [`HEADER`].
    pub fn row(&self) -> String {
        Row::of(self).markdown(&label(self))
    }
}

/// The figures of a table row.
#[derive(Clone, Copy, Debug)]
struct Row {
    sent_per_sec: f64,
    events_per_sec: f64,
    p50: f64,
    p99: f64,
    max: f64,
    ack_p50: f64,
    ack_p99: f64,
    cpu_us_per_event: Option<f64>,
    last_after: f64,
    drain_rate: f64,
    errors: u64,
    missing: u64,
    dropped: u64,
    duplicates: u64,
    out_of_order: u64,
}

impl Row {
    fn of(r: &WebhooksReport) -> Row {
        let w = &r.webhook;
        Row {
            sent_per_sec: r.sent_per_sec,
            events_per_sec: w.events_per_sec,
            p50: w.persist_latency_ms.p50,
            p99: w.persist_latency_ms.p99,
            max: w.persist_latency_ms.max,
            ack_p50: r.ack_latency_ms.p50,
            ack_p99: r.ack_latency_ms.p99,
            cpu_us_per_event: r
                .node_cpu_secs
                .and_then(|cpu| (w.posts_in_window > 0).then(|| cpu * 1e6 / w.posts_in_window as f64)),
            last_after: w.last_after_secs,
            drain_rate: w.drain_events_per_sec,
            errors: r.error_count(),
            missing: w.missing,
            dropped: w.node_notices_dropped.unwrap_or(0),
            duplicates: w.duplicates,
            out_of_order: w.out_of_order,
        }
    }

    fn markdown(&self, label: &str) -> String {
        let cpu = self.cpu_us_per_event.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"));
        // Without a backlog (the last event came within a second) the drain rate says nothing.
        let drain = if self.last_after > 1.0 { format!("{:.0}", self.drain_rate) } else { "–".to_owned() };
        let missing = match self.dropped {
            0 => self.missing.to_string(),
            dropped => format!("{} ({dropped} dropped by the node)", self.missing),
        };
        format!(
            "| {label} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {cpu} | {:.1} | {drain} | {} | {missing} | {} | {} |",
            self.sent_per_sec,
            self.events_per_sec,
            self.p50,
            self.p99,
            self.max,
            self.ack_p50,
            self.ack_p99,
            self.last_after,
            self.errors,
            self.duplicates,
            self.out_of_order,
        )
    }
}

/// The first three cells: scenario, setup, target rate.
fn label(r: &WebhooksReport) -> String {
    let target = if r.target_rate > 0.0 { format!("{:.0}", r.target_rate) } else { "max".to_owned() };
    format!("{} | {} | {target}", r.scenario, r.setup)
}

/// One row of several runs: the median of each figure taken on its own, and
/// errors, missing, duplicates and out-of-order summed over the runs.
pub fn median_row(reports: &[WebhooksReport]) -> anyhow::Result<String> {
    let Some(first) = reports.first() else { anyhow::bail!("no reports") };
    ensure!(reports.iter().all(|r| label(r) == label(first)), "the reports are of different setups or rates");
    let rows: Vec<Row> = reports.iter().map(Row::of).collect();
    let med = |f: fn(&Row) -> f64| median(rows.iter().map(f).collect());
    let cpu: Option<Vec<f64>> = rows.iter().map(|r| r.cpu_us_per_event).collect();
    let sum = |f: fn(&Row) -> u64| rows.iter().map(f).sum();
    let row = Row {
        sent_per_sec: med(|r| r.sent_per_sec),
        events_per_sec: med(|r| r.events_per_sec),
        p50: med(|r| r.p50),
        p99: med(|r| r.p99),
        max: med(|r| r.max),
        ack_p50: med(|r| r.ack_p50),
        ack_p99: med(|r| r.ack_p99),
        cpu_us_per_event: cpu.filter(|v| !v.is_empty()).map(median),
        last_after: med(|r| r.last_after),
        drain_rate: med(|r| r.drain_rate),
        errors: sum(|r| r.errors),
        missing: sum(|r| r.missing),
        dropped: sum(|r| r.dropped),
        duplicates: sum(|r| r.duplicates),
        out_of_order: sum(|r| r.out_of_order),
    };
    Ok(row.markdown(&label(first)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rate: f64, events: f64, p99: f64, missing: u64) -> WebhooksReport {
        WebhooksReport {
            scenario: SCENARIO.into(),
            setup: "chats=16".into(),
            target_rate: rate,
            window: 32,
            warmup_secs: 2.0,
            measured_secs: 10.0,
            sent: 5000,
            sent_per_sec: 500.0,
            ack_latency_ms: Latency::default(),
            acked_total: 6000,
            errors: BTreeMap::new(),
            webhook: WebhookStats {
                events_per_sec: events,
                posts_in_window: 5000,
                missing,
                persist_latency_ms: Latency { p99, ..Latency::default() },
                ..WebhookStats::default()
            },
            node_cpu_secs: Some(1.0),
        }
    }

    #[test]
    fn rows_and_medians() {
        let row = report(500.0, 499.0, 3.0, 0).row();
        assert!(row.starts_with("| webhooks | chats=16 | 500 | 500 | 499 | 0.00 | 3.00 |"), "{row}");
        assert!(row.contains("| 200 |"), "CPU µs per event: {row}");
        let runs = [report(500.0, 400.0, 1.0, 1), report(500.0, 500.0, 9.0, 0), report(500.0, 450.0, 2.0, 2)];
        let median = median_row(&runs).unwrap();
        assert!(median.starts_with("| webhooks | chats=16 | 500 | 500 | 450 | 0.00 | 2.00 |"), "{median}");
        assert!(median.ends_with("| 0 | 3 | 0 | 0 |"), "{median}");
        assert!(median_row(&[report(500.0, 1.0, 1.0, 0), report(0.0, 1.0, 1.0, 0)]).is_err());
    }
}
