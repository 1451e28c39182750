//! The phases of a run — warm-up, measured window, drain — over a set of
//! connected sockets, with progress on stderr once a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::client::{self, Counters, Dialect, Outcome, Phase, Plan, Shared};
use crate::proc::{Sample, Watched};
use crate::socket::Socket;

/// How long each phase lasts.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Sending before the measured window (latencies and rates not counted).
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// After sending stops, how long to wait at most for answers and deliveries.
    pub drain: Duration,
}

/// How long direct sockets may take to find their chats.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a run hands back.
pub struct Ran {
    /// The sockets' outcomes, in the order of the jobs.
    pub outcomes: Vec<Outcome>,
    /// The CPU the watched processes used in the measured window.
    pub cpu: Sample,
    /// The instant the send timestamps in message bodies count from (ns).
    pub epoch: Instant,
    /// When the run phase (the warm-up, then the measured window) started.
    pub started: Instant,
}

/// The sockets, the protocol they speak and the processes whose CPU is measured.
pub struct Jobs {
    /// Each socket with its plan.
    pub jobs: Vec<(Socket, Plan)>,
    /// The protocol of the server under test.
    pub dialect: Dialect,
    /// The server's processes.
    pub watched: Watched,
    /// Webhook events received so far (the receiver's count), shown in the progress lines.
    pub webhook_events: Option<Arc<AtomicU64>>,
}

/// Runs every socket with its plan through the phases; the outcomes come back
/// in the order of `jobs`. `prepare` sockets first find their direct chat
/// (a `recipients` send each) before the clock of the run starts.
pub async fn run(jobs: Jobs, prepare: u64, timing: Timing, body_bytes: usize) -> anyhow::Result<Ran> {
    let Jobs { jobs, dialect, watched, webhook_events } = jobs;
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let epoch = Instant::now();
    let shared = Arc::new(Shared {
        epoch,
        start: AtomicU64::new(u64::MAX),
        warmup_ns: nanos(timing.warmup),
        measure_ns: nanos(timing.measure),
        // The body is "<timestamp>:<pad>"; a timestamp takes up to 20 digits.
        pad: "x".repeat(body_bytes.saturating_sub(21).max(1)),
        dialect,
        counters: Counters::default(),
    });
    let (phase, watching) = watch::channel(Phase::Prepare);
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(socket, plan)| tokio::spawn(client::run(socket, plan, Arc::clone(&shared), watching.clone())))
        .collect();
    let counters = &shared.counters;
    let mut progress = Progress::new(epoch, counters, webhook_events);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let prepared = wait_until(&mut tick, &mut progress, "prepare", PREPARE_TIMEOUT, || {
        counters.prepared.load(Ordering::Relaxed) >= prepare
    })
    .await;
    if !prepared {
        eprintln!(
            "weft-load: only {} of {prepare} direct chats found within {PREPARE_TIMEOUT:?}; running anyway",
            counters.prepared.load(Ordering::Relaxed)
        );
    }
    let started = Instant::now();
    shared.start.store(shared.now_ns(), Ordering::Relaxed);
    let _ = phase.send(Phase::Run);
    progress.restart(started);
    let stop_sending = tokio::time::Instant::from_std(started + timing.warmup + timing.measure);
    let measure_from = tokio::time::Instant::from_std(started + timing.warmup);
    let mut cpu_before = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(measure_from), if cpu_before.is_none() => {
                cpu_before = Some(watched.sample());
            }
            _ = tick.tick() => {
                let label = if started.elapsed() < timing.warmup { "warm-up" } else { "measure" };
                progress.print(label);
            }
            () = tokio::time::sleep_until(stop_sending) => break,
        }
    }
    let cpu = cpu_before.unwrap_or_default().until(watched.sample());
    let _ = phase.send(Phase::Drain);
    if !wait_until(&mut tick, &mut progress, "drain", timing.drain, || drained(counters)).await {
        eprintln!("weft-load: drain timed out after {:?}: answers or deliveries are missing", timing.drain);
    }
    progress.print("done");
    let _ = phase.send(Phase::Close);
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.context("a socket task failed")?);
    }
    Ok(Ran { outcomes, cpu, epoch, started })
}

/// Polls `done` every 20 ms for at most `limit`, printing progress each tick.
async fn wait_until(
    tick: &mut tokio::time::Interval,
    progress: &mut Progress<'_>,
    label: &str,
    limit: Duration,
    done: impl Fn() -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        tokio::select! {
            _ = tick.tick() => progress.print(label),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            () = tokio::time::sleep_until(deadline) => return false,
        }
    }
    true
}

/// Every send answered and every delivery it calls for arrived.
fn drained(counters: &Counters) -> bool {
    counters.in_flight.load(Ordering::Relaxed) <= 0
        && counters.delivered.load(Ordering::Relaxed) >= counters.expected.load(Ordering::Relaxed)
}

/// Live progress: totals and rates since the last line.
struct Progress<'a> {
    epoch: Instant,
    counters: &'a Counters,
    webhook: Option<Arc<AtomicU64>>,
    last: (Instant, u64, u64, u64),
}

impl<'a> Progress<'a> {
    fn new(epoch: Instant, counters: &'a Counters, webhook: Option<Arc<AtomicU64>>) -> Self {
        Self { epoch, counters, webhook, last: (epoch, 0, 0, 0) }
    }

    /// Times from now on count from `start`.
    fn restart(&mut self, start: Instant) {
        self.epoch = start;
    }

    fn print(&mut self, label: &str) {
        let c = self.counters;
        let (acked, delivered) = (c.acked.load(Ordering::Relaxed), c.delivered.load(Ordering::Relaxed));
        let now = Instant::now();
        let secs = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let rate = |n: u64, before: u64| n.saturating_sub(before) as f64 / secs;
        let hooked = self.webhook.as_ref().map_or(0, |n| n.load(Ordering::Relaxed));
        let webhook = match &self.webhook {
            Some(_) => format!(" webhook {hooked} ({:.0}/s)", rate(hooked, self.last.3)),
            None => String::new(),
        };
        eprintln!(
            "weft-load {:>5.1}s {label:<7} sent {acked} ({:.0}/s) delivered {delivered} ({:.0}/s){webhook} in flight {} errors {}",
            now.duration_since(self.epoch).as_secs_f64(),
            rate(acked, self.last.1),
            rate(delivered, self.last.2),
            c.in_flight.load(Ordering::Relaxed),
            c.errors.load(Ordering::Relaxed),
        );
        self.last = (now, acked, delivered, hooked);
    }
}
