//! The `history` scenario: how fast a node reads a chat's history over REST.
//!
//! One chat is seeded with `messages` messages (numbered 1 to `messages`), then
//! two phases run one after the other, each a warm-up and a measured window,
//! with `concurrency` closed-loop readers (request, answer, next request) on
//! keep-alive connections:
//!
//! - `store`: `?per_page=P&before=B` with B random and old enough that the page
//!   lies outside the node's recent-message cache, so it comes from the store;
//! - `newest`: `?per_page=P`, the newest page, which the node may serve from
//!   that cache.
//!
//! Every answer is checked: P numbers, newest first and contiguous, starting at
//! B − 1 (store) or at the chat's last message (newest). A wrong answer is an
//! error like a failed request.

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::time::MissedTickBehavior;

use crate::node::{AppToken, Node};
use crate::report::{Latency, median};

/// The `scenario` of history results (how `weft-load median` tells them apart).
pub const SCENARIO: &str = "history";

/// The newest messages of the chat that the store phase never reads: the
/// node's recent-message cache keeps up to this many (`cache.recent_messages`,
/// 200 by default), and a page served from it would not measure the store.
const CACHE_MARGIN: u64 = 200;

/// The largest page the node serves.
const MAX_PER_PAGE: u64 = 500;

/// Every request, seeding included, gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Failed reads described on stderr per phase; the others are only counted.
const TOLD_ERRORS: u64 = 5;

/// A reader's pause after a failed read, so that a node refusing connections
/// is not hammered in a tight loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What to run.
#[derive(Clone, Debug)]
pub struct History {
    /// Messages posted into the chat before the reads.
    pub messages: u64,
    /// Messages per page read.
    pub per_page: u64,
    /// Readers, each with one read in flight at a time.
    pub concurrency: usize,
    /// REST posts in flight at once while seeding the chat.
    pub seed_concurrency: usize,
    /// Size of each message body, in bytes.
    pub body_bytes: usize,
    /// Reads before each phase's measured window.
    pub warmup: Duration,
    /// Each phase's measured window.
    pub measure: Duration,
}

/// The figures of a history run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryReport {
    /// Always [`SCENARIO`].
    pub scenario: String,
    /// Its parameters, e.g. `messages=2000 per_page=50 concurrency=8`.
    pub setup: String,
    /// Messages in the chat.
    pub messages: u64,
    /// Messages per page.
    pub per_page: u64,
    /// Closed-loop readers.
    pub concurrency: usize,
    /// REST posts in flight at once while seeding.
    #[serde(default)]
    pub seed_concurrency: usize,
    /// Posts per second while seeding (each answered 201 once persisted).
    #[serde(default)]
    pub seed_posts_per_sec: f64,
    /// Seconds of warm-up of each phase.
    pub warmup_secs: f64,
    /// Seconds measured of each phase.
    pub measured_secs: f64,
    /// Old pages (`before`), from the store.
    pub store: PhaseReport,
    /// The newest page.
    pub newest: PhaseReport,
}

/// The figures of one phase.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Reads sent in the measured window and answered correctly.
    pub requests: u64,
    /// `requests` per second.
    pub requests_per_sec: f64,
    /// Request→answer latency of those reads.
    pub latency_ms: Latency,
    /// Failed or wrongly answered reads over the whole phase, warm-up included.
    pub errors: u64,
}

impl HistoryReport {
    /// The markdown table header of history rows.
    pub const HEADER: &'static str = "\
| scenario | setup | phase | reads/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |
|---|---|---|---|---|---|---|---|---|
";

    /// Every read that failed or was answered wrongly, in both phases.
    pub fn errors(&self) -> u64 {
        self.store.errors + self.newest.errors
    }

    /// One markdown row per phase, under [`HistoryReport::HEADER`].
    pub fn rows(&self) -> String {
        rows(&self.label(), &self.store, &self.newest)
    }

    /// The first two cells: scenario and setup.
    fn label(&self) -> String {
        format!("{} | {}", self.scenario, self.setup)
    }
}

fn rows(label: &str, store: &PhaseReport, newest: &PhaseReport) -> String {
    [(Phase::Store, store), (Phase::Newest, newest)]
        .map(|(phase, p)| {
            format!(
                "| {label} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                phase.name(),
                p.requests_per_sec,
                p.latency_ms.p50,
                p.latency_ms.p99,
                p.latency_ms.p999,
                p.latency_ms.max,
                p.errors
            )
        })
        .join("\n")
}

/// One row per phase of several runs of the same setup: the median of each
/// figure taken on its own, errors summed over the runs.
pub fn median_rows(reports: &[HistoryReport]) -> anyhow::Result<String> {
    let Some(first) = reports.first() else { bail!("no reports") };
    ensure!(reports.iter().all(|r| r.label() == first.label()), "the reports are of different setups");
    let store: Vec<&PhaseReport> = reports.iter().map(|r| &r.store).collect();
    let newest: Vec<&PhaseReport> = reports.iter().map(|r| &r.newest).collect();
    Ok(rows(&first.label(), &median_phase(&store), &median_phase(&newest)))
}

fn median_phase(phases: &[&PhaseReport]) -> PhaseReport {
    let med = |f: fn(&PhaseReport) -> f64| median(phases.iter().copied().map(f).collect());
    PhaseReport {
        requests: med(|p| p.requests as f64).round() as u64,
        requests_per_sec: med(|p| p.requests_per_sec),
        latency_ms: Latency {
            p50: med(|p| p.latency_ms.p50),
            p99: med(|p| p.latency_ms.p99),
            p999: med(|p| p.latency_ms.p999),
            max: med(|p| p.latency_ms.max),
            samples: med(|p| p.latency_ms.samples as f64).round() as u64,
        },
        errors: phases.iter().map(|p| p.errors).sum(),
    }
}

/// The two phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Store,
    Newest,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Store => "store",
            Phase::Newest => "newest",
        }
    }
}

/// What every reader shares.
struct Reads {
    node: Node,
    app: AppToken,
    chat: u64,
    messages: u64,
    per_page: u64,
    /// The `before` values of the store phase.
    old: RangeInclusive<u64>,
}

impl Reads {
    /// A read's `before` and the number its page must start with.
    fn pick(&self, phase: Phase, rng: &mut SplitMix) -> (Option<u64>, u64) {
        match phase {
            Phase::Newest => (None, self.messages),
            Phase::Store => {
                let before = rng.pick(&self.old);
                (Some(before), before - 1)
            }
        }
    }
}

/// Running totals of a phase, for live progress.
#[derive(Debug, Default)]
struct Counters {
    answered: AtomicU64,
    errors: AtomicU64,
    /// Failed reads described on stderr so far.
    told: AtomicU64,
}

/// When a phase's measured window opens and closes.
#[derive(Clone, Copy, Debug)]
struct Window {
    from: Instant,
    until: Instant,
}

impl History {
    /// Sets up the chat on `node`, then runs the store phase and the newest phase.
    pub async fn run(&self, node: &Node) -> anyhow::Result<HistoryReport> {
        let old = store_range(self.messages, self.per_page)?;
        ensure!(self.concurrency >= 1, "--concurrency must be at least 1");
        ensure!(self.seed_concurrency >= 1, "--seed-concurrency must be at least 1");
        ensure!(!self.measure.is_zero(), "--duration-secs must be at least 1");
        let app = within("create an application", node.create_app("weft-load history")).await?;
        let chat = within("create a chat", node.create_chat(&app)).await?;
        let seed_posts_per_sec = self.seed(node, &app, chat).await?;
        let reads = Arc::new(Reads {
            node: node.clone(),
            app,
            chat,
            messages: self.messages,
            per_page: self.per_page,
            old,
        });
        let store = self.phase(&reads, Phase::Store).await?;
        let newest = self.phase(&reads, Phase::Newest).await?;
        Ok(HistoryReport {
            scenario: SCENARIO.to_owned(),
            setup: format!(
                "messages={} per_page={} concurrency={}",
                self.messages, self.per_page, self.concurrency
            ),
            messages: self.messages,
            per_page: self.per_page,
            concurrency: self.concurrency,
            seed_concurrency: self.seed_concurrency,
            seed_posts_per_sec,
            warmup_secs: self.warmup.as_secs_f64(),
            measured_secs: self.measure.as_secs_f64(),
            store,
            newest,
        })
    }

    /// Posts messages 1 to `messages` into the chat, `seed_concurrency` at a
    /// time; returns the posts per second.
    async fn seed(&self, node: &Node, app: &AppToken, chat: u64) -> anyhow::Result<f64> {
        let started = Instant::now();
        let mut posts = futures::stream::iter(1..=self.messages)
            .map(|i| {
                let body = body(i, self.body_bytes);
                async move { within("post a message", node.post_message(app, chat, &body)).await }
            })
            .buffer_unordered(self.seed_concurrency);
        let mut numbers = Vec::new();
        let mut tick = every_second();
        loop {
            tokio::select! {
                posted = posts.next() => match posted {
                    Some(number) => numbers.push(number?),
                    None => break,
                },
                _ = tick.tick() => eprintln!(
                    "weft-load {:>5.1}s seed    posted {} of {}",
                    started.elapsed().as_secs_f64(),
                    numbers.len(),
                    self.messages
                ),
            }
        }
        numbers.sort_unstable();
        ensure!(
            numbers.iter().copied().eq(1..=self.messages),
            "the {} messages posted into the new chat #{chat} are not numbered 1 to {}",
            numbers.len(),
            self.messages
        );
        let secs = started.elapsed().as_secs_f64();
        let per_sec = if secs > 0.0 { self.messages as f64 / secs } else { 0.0 };
        eprintln!(
            "weft-load: history setup: {} messages posted into chat #{chat} in {secs:.1} s \
             ({per_sec:.0} posts/s, {} in flight)",
            self.messages, self.seed_concurrency
        );
        Ok(per_sec)
    }

    /// One phase: a warm-up, then the measured window, with live progress.
    async fn phase(&self, reads: &Arc<Reads>, phase: Phase) -> anyhow::Result<PhaseReport> {
        let start = Instant::now();
        let window = Window { from: start + self.warmup, until: start + self.warmup + self.measure };
        let counters = Arc::new(Counters::default());
        let readers: Vec<_> = (0..self.concurrency)
            .map(|index| {
                let (reads, counters) = (Arc::clone(reads), Arc::clone(&counters));
                tokio::spawn(async move { read(&reads, phase, index, window, &counters).await })
            })
            .collect();
        let mut progress = Progress { phase, start, window, counters: &counters, last: (start, 0) };
        let mut tick = every_second();
        let until = tokio::time::Instant::from_std(window.until);
        loop {
            tokio::select! {
                _ = tick.tick() => progress.print(),
                () = tokio::time::sleep_until(until) => break,
            }
        }
        // Each reader ends with its last read, which REQUEST_TIMEOUT bounds.
        let mut latencies = Vec::new();
        for reader in readers {
            latencies.extend(reader.await.context("a reader failed")?);
        }
        progress.print();
        let requests = latencies.len() as u64;
        Ok(PhaseReport {
            requests,
            requests_per_sec: requests as f64 / self.measure.as_secs_f64(),
            latency_ms: Latency::of_micros(latencies),
            errors: counters.errors.load(Ordering::Relaxed),
        })
    }
}

/// One closed-loop reader until the window closes: the latencies, in µs, of
/// its reads sent in the window and answered correctly.
async fn read(reads: &Reads, phase: Phase, index: usize, window: Window, counters: &Counters) -> Vec<u32> {
    let mut rng = SplitMix(index as u64);
    let mut latencies = Vec::new();
    while Instant::now() < window.until {
        let (before, first) = reads.pick(phase, &mut rng);
        let sent = Instant::now();
        let answer =
            within("read a page", reads.node.message_numbers(&reads.app, reads.chat, reads.per_page, before))
                .await;
        let took = sent.elapsed();
        let checked = match answer {
            Ok(numbers) => check_page(&numbers, reads.per_page, first).map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => {
                counters.answered.fetch_add(1, Ordering::Relaxed);
                if sent >= window.from {
                    latencies.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                }
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if counters.told.fetch_add(1, Ordering::Relaxed) < TOLD_ERRORS {
                    let before = before.map_or_else(|| "none".to_owned(), |b| b.to_string());
                    eprintln!("weft-load: history {} read (before={before}) failed: {e:#}", phase.name());
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    latencies
}

/// The `before` values of the store phase: every page lies in 1..=messages and
/// is older than the newest [`CACHE_MARGIN`] messages.
fn store_range(messages: u64, per_page: u64) -> anyhow::Result<RangeInclusive<u64>> {
    ensure!((1..=MAX_PER_PAGE).contains(&per_page), "--per-page must be from 1 to {MAX_PER_PAGE}");
    let (low, high) = (per_page + 1, messages.saturating_sub(CACHE_MARGIN));
    ensure!(
        low <= high,
        "--messages must be at least {} with --per-page {per_page}: the store phase reads only pages \
         older than the newest {CACHE_MARGIN} messages, which the node may cache",
        per_page + 1 + CACHE_MARGIN
    );
    Ok(low..=high)
}

/// What is wrong with a page of message numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageError {
    /// It holds `got` messages instead of `want`.
    Length { got: usize, want: u64 },
    /// Its first (newest) message is `got` instead of `want`.
    First { got: u64, want: u64 },
    /// After `after` comes `got` instead of `after - 1`.
    Order { after: u64, got: u64 },
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::Length { got, want } => write!(f, "the page holds {got} messages, not {want}"),
            PageError::First { got, want } => write!(f, "the page starts at message {got}, not {want}"),
            PageError::Order { after, got } => {
                write!(f, "message {got} follows message {after} (newest first, without gaps)")
            }
        }
    }
}

impl std::error::Error for PageError {}

/// Whether `numbers` are the `per_page` messages from `first` downwards.
fn check_page(numbers: &[u64], per_page: u64, first: u64) -> Result<(), PageError> {
    if numbers.len() as u64 != per_page {
        return Err(PageError::Length { got: numbers.len(), want: per_page });
    }
    if let Some(&got) = numbers.first()
        && got != first
    {
        return Err(PageError::First { got, want: first });
    }
    for pair in numbers.windows(2) {
        if let &[after, got] = pair
            && after.checked_sub(1) != Some(got)
        {
            return Err(PageError::Order { after, got });
        }
    }
    Ok(())
}

/// Message `i`'s body: its number, padded to `bytes`.
fn body(i: u64, bytes: usize) -> String {
    let mut body = format!("history {i} ");
    let pad = bytes.saturating_sub(body.len());
    body.extend(std::iter::repeat_n('x', pad));
    body
}

/// `call`, given up after [`REQUEST_TIMEOUT`].
async fn within<T>(what: &str, call: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .map_err(|_| anyhow!("cannot {what}: no answer within {REQUEST_TIMEOUT:?}"))?
}

/// A tick a second, the first one a second from now.
fn every_second() -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Live progress of a phase: totals and the rate since the last line.
struct Progress<'a> {
    phase: Phase,
    start: Instant,
    window: Window,
    counters: &'a Counters,
    last: (Instant, u64),
}

impl Progress<'_> {
    fn print(&mut self) {
        let now = Instant::now();
        let answered = self.counters.answered.load(Ordering::Relaxed);
        let label = match now {
            t if t < self.window.from => "warm-up",
            t if t < self.window.until => "measure",
            _ => "done",
        };
        let secs = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        eprintln!(
            "weft-load {:>5.1}s {:<6} {label:<7} reads {answered} ({:.0}/s) errors {}",
            now.duration_since(self.start).as_secs_f64(),
            self.phase.name(),
            answered.saturating_sub(self.last.1) as f64 / secs,
            self.counters.errors.load(Ordering::Relaxed),
        );
        self.last = (now, answered);
    }
}

/// A small deterministic generator (splitmix64), seeded per reader: enough to
/// spread reads over the pages, and the same pages run after run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `range` (the modulo bias is negligible for page numbers).
    fn pick(&mut self, range: &RangeInclusive<u64>) -> u64 {
        let span = (range.end() - range.start()).saturating_add(1);
        range.start() + self.next() % span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked() {
        assert_eq!(check_page(&[10, 9, 8], 3, 10), Ok(()));
        assert_eq!(check_page(&[10, 9], 3, 10), Err(PageError::Length { got: 2, want: 3 }));
        assert_eq!(check_page(&[11, 10, 9], 3, 10), Err(PageError::First { got: 11, want: 10 }));
        assert_eq!(check_page(&[10, 8, 7], 3, 10), Err(PageError::Order { after: 10, got: 8 }));
        assert_eq!(check_page(&[10, 9, 9], 3, 10), Err(PageError::Order { after: 9, got: 9 }));
        assert_eq!(check_page(&[8, 9, 10], 3, 8), Err(PageError::Order { after: 8, got: 9 }));
    }

    #[test]
    fn store_pages_stay_clear_of_the_cache() {
        assert_eq!(store_range(2000, 50).unwrap(), 51..=1800);
        assert_eq!(store_range(300, 50).unwrap(), 51..=100);
        assert_eq!(store_range(251, 50).unwrap(), 51..=51);
        assert!(store_range(250, 50).is_err());
        assert!(store_range(2000, 0).is_err());
        assert!(store_range(2000, 501).is_err());
    }

    #[test]
    fn picks_cover_the_range_and_stay_in_it() {
        let mut rng = SplitMix(3);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let n = rng.pick(&(51..=55));
            assert!((51..=55).contains(&n));
            seen[(n - 51) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn bodies_have_the_size_asked_for() {
        assert_eq!(body(7, 64).len(), 64);
        assert_eq!(body(7, 0), "history 7 ");
    }

    fn report(store_p50: f64, newest_p50: f64, errors: u64) -> HistoryReport {
        let phase = |p50: f64| PhaseReport {
            requests: 1000,
            requests_per_sec: 100.0 * p50,
            latency_ms: Latency { p50, p99: 2.0 * p50, p999: 3.0 * p50, max: 4.0 * p50, samples: 1000 },
            errors,
        };
        HistoryReport {
            scenario: SCENARIO.to_owned(),
            setup: "messages=2000 per_page=50 concurrency=8".to_owned(),
            messages: 2000,
            per_page: 50,
            concurrency: 8,
            seed_concurrency: 32,
            seed_posts_per_sec: 1000.0,
            warmup_secs: 2.0,
            measured_secs: 10.0,
            store: phase(store_p50),
            newest: phase(newest_p50),
        }
    }

    #[test]
    fn medians_of_history_runs_are_one_row_per_phase() {
        let runs = [report(1.0, 0.1, 0), report(3.0, 0.3, 1), report(2.0, 0.2, 0)];
        let rows = median_rows(&runs).unwrap();
        assert_eq!(
            rows,
            "| history | messages=2000 per_page=50 concurrency=8 | store | 200 | 2.00 | 4.00 | 6.00 | 8.00 | 1 |\n\
             | history | messages=2000 per_page=50 concurrency=8 | newest | 20 | 0.20 | 0.40 | 0.60 | 0.80 | 1 |"
        );
        assert_eq!(rows, median_rows(&[report(2.0, 0.2, 1)]).unwrap());
    }

    #[test]
    fn medians_refuse_mixed_setups() {
        let mut other = report(1.0, 0.1, 0);
        other.setup = "messages=300 per_page=50 concurrency=8".to_owned();
        assert!(median_rows(&[report(1.0, 0.1, 0), other]).is_err());
        assert!(median_rows(&[]).is_err());
    }

    #[test]
    fn reports_round_trip_through_json() {
        let json = serde_json::to_string(&report(1.0, 0.1, 0)).unwrap();
        let back: HistoryReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.rows(), report(1.0, 0.1, 0).rows());
    }
}
