//! The side-by-side table of `loadtest/centrifugo.sh`: for one load, weft's row,
//! Centrifugo's row and their ratios (weft / Centrifugo), each figure the median of
//! its runs; and the "sustained" test of the max-rate search.

use anyhow::ensure;

use crate::idle::IdleReport;
use crate::report::{Report, median};

/// The header of the delivery table.
pub const HEADER: &str = "\
| load | server | offered msg/s | sent msg/s | deliveries/s | p50 ms | p99 ms | ack p99 ms | node CPU-s | services CPU-s | node CPU µs per delivery | missing | duplicates | errors |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
";

/// The header of the idle table.
pub const IDLE_HEADER: &str = "\
| load | server | connections | RSS per connection | CPU while idle |
|---|---|---|---|---|
";

/// The medians of one server's runs of one load.
#[derive(Clone, Copy, Debug)]
struct Figures {
    offered: f64,
    sent: f64,
    deliveries: f64,
    p50: f64,
    p99: f64,
    ack_p99: f64,
    node_cpu: Option<f64>,
    service_cpu: Option<f64>,
    cpu_us_per_delivery: Option<f64>,
    missing: u64,
    duplicates: u64,
    errors: u64,
}

/// The median of the figures that are there (`None` if a run lacks one).
fn median_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.collect::<Option<Vec<f64>>>().filter(|v| !v.is_empty()).map(median)
}

impl Figures {
    fn of(runs: &[Report]) -> anyhow::Result<Figures> {
        ensure!(!runs.is_empty(), "no runs");
        let med = |f: fn(&Report) -> f64| median(runs.iter().map(f).collect());
        Ok(Figures {
            offered: med(|r| r.target_rate),
            sent: med(|r| r.sent_per_sec),
            deliveries: med(|r| r.deliveries_per_sec),
            p50: med(|r| r.latency_ms.p50),
            p99: med(|r| r.latency_ms.p99),
            ack_p99: med(|r| r.ack_latency_ms.p99),
            node_cpu: median_of(runs.iter().map(|r| r.node_cpu_secs)),
            service_cpu: median_of(runs.iter().map(|r| r.service_cpu_secs)),
            cpu_us_per_delivery: median_of(runs.iter().map(|r| {
                let cpu = r.node_cpu_secs?;
                (r.deliveries > 0).then(|| cpu * 1e6 / r.deliveries as f64)
            })),
            missing: runs.iter().map(|r| r.missing).sum(),
            duplicates: runs.iter().map(|r| r.duplicates).sum(),
            errors: runs.iter().map(Report::error_count).sum(),
        })
    }

    fn row(&self, load: &str, server: &str) -> String {
        let offered = if self.offered > 0.0 { format!("{:.0}", self.offered) } else { "max".to_owned() };
        format!(
            "| {load} | {server} | {offered} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} |",
            self.sent,
            self.deliveries,
            self.p50,
            self.p99,
            self.ack_p99,
            opt(self.node_cpu, 2),
            opt(self.service_cpu, 2),
            opt(self.cpu_us_per_delivery, 2),
            self.missing,
            self.duplicates,
            self.errors
        )
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

/// `a / b` to two decimals, or a dash when either is missing or `b` is 0.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

/// weft's row, Centrifugo's row and the ratios, for one load.
pub fn rows(load: &str, weft: &[Report], centrifugo: &[Report]) -> anyhow::Result<String> {
    labelled_rows(load, ("weft", weft), ("Centrifugo", centrifugo))
}

/// The same rows for any two sets of runs of one load, each under its label (the
/// `server` cell), e.g. weft with and without a webhook (`weft-load compare`); the
/// ratios are the first's over the second's.
pub fn labelled_rows(
    load: &str,
    (a_label, a): (&str, &[Report]),
    (b_label, b): (&str, &[Report]),
) -> anyhow::Result<String> {
    let (w, c) = (Figures::of(a)?, Figures::of(b)?);
    let r = |a: f64, b: f64| ratio(Some(a), Some(b));
    Ok(format!(
        "{}\n{}\n| {load} | {a_label} / {b_label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | | | |",
        w.row(load, a_label),
        c.row(load, b_label),
        r(w.offered, c.offered),
        r(w.sent, c.sent),
        r(w.deliveries, c.deliveries),
        r(w.p50, c.p50),
        r(w.p99, c.p99),
        r(w.ack_p99, c.ack_p99),
        ratio(w.node_cpu, c.node_cpu),
        ratio(w.service_cpu, c.service_cpu),
        ratio(w.cpu_us_per_delivery, c.cpu_us_per_delivery),
    ))
}

/// The idle rows: memory and CPU per connection, and the ratios.
pub fn idle_rows(load: &str, weft: &[IdleReport], centrifugo: &[IdleReport]) -> anyhow::Result<String> {
    ensure!(!weft.is_empty() && !centrifugo.is_empty(), "no runs");
    let kib =
        |runs: &[IdleReport]| median(runs.iter().map(|r| r.rss_bytes_per_connection / 1024.0).collect());
    let cores = |runs: &[IdleReport]| median(runs.iter().map(|r| r.cpu_cores).collect());
    let connections = |runs: &[IdleReport]| runs.iter().map(|r| r.connections).min().unwrap_or_default();
    let row = |server: &str, runs: &[IdleReport]| {
        format!(
            "| {load} | {server} | {} | {:.2} KiB | {:.1} % of a core |",
            connections(runs),
            kib(runs),
            cores(runs) * 100.0
        )
    };
    Ok(format!(
        "{}\n{}\n| {load} | weft / Centrifugo | | {} | {} |",
        row("weft", weft),
        row("Centrifugo", centrifugo),
        ratio(Some(kib(weft)), Some(kib(centrifugo))),
        ratio(Some(cores(weft)), Some(cores(centrifugo))),
    ))
}

/// Whether the runs of one offered rate sustained it: nothing missing or
/// duplicated, no errors, the median sent rate at least 95 % of the offered
/// rate, and the median p99 at most `max_p99_ms`. The reason if not.
pub fn sustained(runs: &[Report], max_p99_ms: f64) -> anyhow::Result<Result<(), String>> {
    let f = Figures::of(runs)?;
    Ok(if f.missing + f.duplicates + f.errors > 0 {
        Err(format!("{} missing, {} duplicates, {} errors", f.missing, f.duplicates, f.errors))
    } else if f.offered > 0.0 && f.sent < 0.95 * f.offered {
        Err(format!("sent {:.0} msg/s of {:.0} offered", f.sent, f.offered))
    } else if f.p99 > max_p99_ms {
        Err(format!("p99 {:.1} ms > {max_p99_ms} ms", f.p99))
    } else {
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: f64, sent: f64, p99: f64, cpu: f64, missing: u64) -> Report {
        let json = serde_json::json!({
            "scenario": "fanout", "setup": "members=10 senders=1", "target_rate": rate, "window": 32,
            "sockets": 11, "warmup_secs": 1.0, "measured_secs": 10.0, "sent": (sent * 10.0) as u64,
            "sent_per_sec": sent, "deliveries": (sent * 100.0) as u64, "deliveries_per_sec": sent * 10.0,
            "latency_ms": {"p50": p99 / 2.0, "p99": p99, "p999": p99, "max": p99, "samples": 1},
            "ack_latency_ms": {"p50": 1.0, "p99": p99 / 10.0, "p999": p99, "max": p99, "samples": 1},
            "acked_total": 1, "missing": missing, "duplicates": 0, "unexpected_deliveries": 0,
            "errors": {}, "rate_limited": 0, "lost_sockets": 0, "direct_chat_mismatches": 0,
            "node_cpu_secs": cpu
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn rows_give_medians_and_ratios() {
        let weft = [
            run(100.0, 100.0, 40.0, 2.0, 0),
            run(100.0, 100.0, 20.0, 1.0, 0),
            run(100.0, 99.0, 30.0, 3.0, 0),
        ];
        let centrifugo = [run(100.0, 100.0, 10.0, 1.0, 0)];
        let rows = rows("load", &weft, &centrifugo).unwrap();
        let lines: Vec<&str> = rows.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0]
                .starts_with("| load | weft | 100 | 100 | 1000 | 15.00 | 30.00 | 3.00 | 2.00 | – | 200.00 |"),
            "{}",
            lines[0]
        );
        assert!(lines[2].contains("| 3.00× | 3.00× | 2.00× | – | 2.00× |"), "{}", lines[2]);
    }

    #[test]
    fn a_rate_is_sustained_only_if_kept_up_within_the_p99_and_complete() {
        assert_eq!(sustained(&[run(100.0, 99.0, 200.0, 1.0, 0)], 250.0).unwrap(), Ok(()));
        assert!(sustained(&[run(100.0, 99.0, 300.0, 1.0, 0)], 250.0).unwrap().is_err());
        assert!(sustained(&[run(100.0, 90.0, 100.0, 1.0, 0)], 250.0).unwrap().is_err());
        assert!(sustained(&[run(100.0, 99.0, 100.0, 1.0, 3)], 250.0).unwrap().is_err());
    }
}
