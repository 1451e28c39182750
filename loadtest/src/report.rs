//! A run's figures: JSON for files, one markdown row for tables, and the
//! median of several runs.

use std::collections::BTreeMap;

use anyhow::ensure;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::Outcome;
use crate::proc::Sample;
use crate::receiver::WebhookStats;

/// The header of the markdown table that [`Report::row`] and [`median_row`] fill.
pub const HEADER: &str = "\
| scenario | setup | target msg/s | sent msg/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | errors | missing | duplicates |
|---|---|---|---|---|---|---|---|---|---|---|
";

/// Latency percentiles, in ms: send→receive of the messages sent in the
/// measured window, or request→answer of the `history` reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Samples measured (deliveries, or reads).
    pub samples: u64,
}

impl Latency {
    /// The percentiles of latencies in µs.
    pub(crate) fn of_micros(samples: impl IntoIterator<Item = u32>) -> Latency {
        // 1 µs to 1 hour at 3 significant figures.
        let Ok(mut h) = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3) else {
            return Latency::default();
        };
        for us in samples {
            h.saturating_record(u64::from(us).max(1));
        }
        let ms = |us: u64| us as f64 / 1_000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            samples: h.len(),
        }
    }
}

/// The figures of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// `fanout` or `dm`.
    pub scenario: String,
    /// The server under test: `weft` or `centrifugo`.
    #[serde(default = "weft")]
    pub server: String,
    /// Its parameters, e.g. `members=100 senders=1`.
    pub setup: String,
    /// Target sends per second over all senders; 0 = as fast as acks allow.
    pub target_rate: f64,
    /// Unacknowledged sends per socket at most.
    pub window: usize,
    /// WebSockets the generator held open.
    pub sockets: usize,
    /// Seconds of warm-up, then of measurement.
    pub warmup_secs: f64,
    /// Seconds measured.
    pub measured_secs: f64,
    /// Acknowledged sends that were sent in the measured window.
    pub sent: u64,
    /// `sent` per second.
    pub sent_per_sec: f64,
    /// Deliveries received in the measured window.
    pub deliveries: u64,
    /// `deliveries` per second.
    pub deliveries_per_sec: f64,
    /// Latency percentiles.
    pub latency_ms: Latency,
    /// Send→ack latency percentiles (a weft ack comes once the send is persisted).
    #[serde(default)]
    pub ack_latency_ms: Latency,
    /// Acknowledged sends over the whole run (warm-up and drain too).
    pub acked_total: u64,
    /// Deliveries the acknowledged sends called for but that never came.
    pub missing: u64,
    /// Messages a socket received more than once.
    pub duplicates: u64,
    /// Deliveries no acknowledged send called for (never acknowledged, or to the wrong socket).
    pub unexpected_deliveries: u64,
    /// Errors by kind (error frame codes, lost sockets), over the whole run.
    pub errors: BTreeMap<String, u64>,
    /// `rate_limited` error frames (also in `errors`).
    pub rate_limited: u64,
    /// Sockets lost before the generator closed them.
    pub lost_sockets: u64,
    /// `dm`: pairs whose two sides' sends went to different chats.
    pub direct_chat_mismatches: u64,
    /// CPU seconds the server's nodes used in the measured window (`--server-pid`).
    #[serde(default)]
    pub node_cpu_secs: Option<f64>,
    /// … and the services they use (`--service-pid`: Redis, Cassandra).
    #[serde(default)]
    pub service_cpu_secs: Option<f64>,
    /// `--webhook`: what the receiver of the webhook for every event got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookStats>,
}

fn weft() -> String {
    "weft".to_owned()
}

/// The count check of a scenario: what its acknowledged sends should have reached.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Check {
    /// Of those, the ones that never came.
    pub missing: u64,
    /// Deliveries that no acknowledged send called for.
    pub unexpected: u64,
    /// `dm`: pairs whose sides disagree on their chat.
    pub direct_chat_mismatches: u64,
}

/// What a scenario hands to [`Report::new`].
#[derive(Clone, Debug)]
pub(crate) struct Run<'a> {
    /// `fanout` or `dm`.
    pub scenario: &'a str,
    /// `weft` or `centrifugo`.
    pub server: &'a str,
    /// Its parameters.
    pub setup: String,
    /// Target sends per second over all senders.
    pub target_rate: f64,
    /// Window per socket.
    pub window: usize,
    /// Warm-up, in seconds.
    pub warmup_secs: f64,
    /// Measured window, in seconds.
    pub measured_secs: f64,
}

impl Report {
    /// Sums the sockets' outcomes.
    pub(crate) fn new(run: Run<'_>, outcomes: &[Outcome], cpu: Sample, check: Check) -> Report {
        let mut errors = BTreeMap::new();
        let (mut sent, mut deliveries, mut acked, mut duplicates, mut lost) = (0, 0, 0, 0, 0);
        for o in outcomes {
            sent += o.sent_in_window;
            deliveries += o.delivered_in_window;
            acked += o.acked.len() as u64;
            duplicates += o.duplicates;
            lost += u64::from(o.lost);
            for (kind, n) in &o.errors {
                *errors.entry(kind.clone()).or_default() += n;
            }
        }
        // One histogram for the whole run.
        let latency_ms = Latency::of_micros(outcomes.iter().flat_map(|o| o.latencies_us.iter().copied()));
        let ack_latency_ms =
            Latency::of_micros(outcomes.iter().flat_map(|o| o.ack_latencies_us.iter().copied()));
        let per_sec = |n: u64| if run.measured_secs > 0.0 { n as f64 / run.measured_secs } else { 0.0 };
        Report {
            scenario: run.scenario.to_owned(),
            server: run.server.to_owned(),
            setup: run.setup,
            target_rate: run.target_rate,
            window: run.window,
            sockets: outcomes.len(),
            warmup_secs: run.warmup_secs,
            measured_secs: run.measured_secs,
            sent,
            sent_per_sec: per_sec(sent),
            deliveries,
            deliveries_per_sec: per_sec(deliveries),
            latency_ms,
            ack_latency_ms,
            acked_total: acked,
            missing: check.missing,
            duplicates,
            unexpected_deliveries: check.unexpected,
            rate_limited: errors.get("rate_limited").copied().unwrap_or(0),
            errors,
            lost_sockets: lost,
            direct_chat_mismatches: check.direct_chat_mismatches,
            node_cpu_secs: cpu.nodes,
            service_cpu_secs: cpu.services,
            webhook: None,
        }
    }

    /// Every error of the run, lost sockets and chat mismatches included.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.direct_chat_mismatches
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
    deliveries_per_sec: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: u64,
    missing: u64,
    duplicates: u64,
}

impl Row {
    fn of(r: &Report) -> Row {
        Row {
            sent_per_sec: r.sent_per_sec,
            deliveries_per_sec: r.deliveries_per_sec,
            p50: r.latency_ms.p50,
            p99: r.latency_ms.p99,
            p999: r.latency_ms.p999,
            errors: r.error_count(),
            missing: r.missing,
            duplicates: r.duplicates,
        }
    }

    fn markdown(&self, label: &str) -> String {
        format!(
            "| {label} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            self.sent_per_sec,
            self.deliveries_per_sec,
            self.p50,
            self.p99,
            self.p999,
            self.errors,
            self.missing,
            self.duplicates
        )
    }
}

/// The first three cells: scenario, setup, target rate.
fn label(r: &Report) -> String {
    let target = if r.target_rate > 0.0 { format!("{:.0}", r.target_rate) } else { "max".to_owned() };
    format!("{} | {} | {target}", r.scenario, r.setup)
}

/// One row of several runs of the same scenario: the median of each figure
/// taken on its own, and errors, missing and duplicates summed over the runs.
pub fn median_row(reports: &[Report]) -> anyhow::Result<String> {
    let Some(first) = reports.first() else { anyhow::bail!("no reports") };
    ensure!(
        reports.iter().all(|r| label(r) == label(first)),
        "the reports are of different scenarios, setups or rates"
    );
    let rows: Vec<Row> = reports.iter().map(Row::of).collect();
    let med = |f: fn(&Row) -> f64| median(rows.iter().map(f).collect());
    let row = Row {
        sent_per_sec: med(|r| r.sent_per_sec),
        deliveries_per_sec: med(|r| r.deliveries_per_sec),
        p50: med(|r| r.p50),
        p99: med(|r| r.p99),
        p999: med(|r| r.p999),
        errors: rows.iter().map(|r| r.errors).sum(),
        missing: rows.iter().map(|r| r.missing).sum(),
        duplicates: rows.iter().map(|r| r.duplicates).sum(),
    };
    Ok(row.markdown(&label(first)))
}

/// The median of `values` (0 for none).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
