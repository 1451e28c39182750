//! `[gateway]`: the limits and timings of WebSocket sessions.

use serde::Deserialize;

/// Tuning of WebSocket sessions (`[gateway]` in the config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Frames that may wait for a slow client before it is cut off (close 4200).
    pub outbox_frames: usize,
    /// Bytes of frames that may wait for a slow client (each session counts
    /// what it holds, though frames are shared) before it is cut off (4200).
    pub outbox_bytes: usize,
    /// Largest frame a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Sessions this node holds at most; the next is closed with 4101.
    pub max_connections: usize,
    /// Sessions one user may hold on this node; the next is closed with 4102 (0: no cap).
    pub max_sessions_per_user: usize,
    /// Sessions one application's users may hold on this node; the next is closed with 4102 (0: no cap).
    pub max_sessions_per_app: usize,
    /// A session silent for this long is pinged, in ms.
    pub heartbeat_ms: u64,
    /// A session silent for this long (no frame, no pong) is closed with 4201, in ms.
    pub idle_timeout_ms: u64,
    /// Sends per second a user may make (token bucket refill), across their sessions.
    pub send_rate_per_sec: u32,
    /// Sends a user may burst above the rate.
    pub send_burst: u32,
    /// Client frames per second a session may send, of any type (token bucket refill).
    pub frame_rate_per_sec: u32,
    /// Client frames a session may burst above that rate.
    pub frame_burst: u32,
    /// At most one `typing` per user and chat is fanned out per this many ms.
    pub typing_interval_ms: u64,
    /// A user's `offline` presence waits this long for a reconnect, in ms.
    pub presence_debounce_ms: u64,
    /// Strikes a session may earn per 10 s before close 4100: error answers to its
    /// mistakes, and frames it sent before a `rate_limited` answer's `retry_after_ms`.
    pub max_bad_frames: u32,
    /// Most messages one `hello` replays per chat; past it `has_more` is true.
    pub resume_max_messages: usize,
    /// How long one socket write may block before the client counts as slow, in ms.
    pub write_timeout_ms: u64,
    /// Sends one session may have numbered but not yet acked; past it the
    /// session reads no more frames until one is acked (backpressure on the socket).
    pub max_inflight_sends: usize,
    /// Whether the hub's flusher may write live frames to an idle session's
    /// plain TCP socket itself rather than waking the session to write them
    /// (`delivery::hub`, `delivery::outbox`): less CPU and latency per
    /// delivery (`docs/benchmarks.md`, issue 15).
    pub direct_writes: bool,
    /// Longest the flusher's next write round may wait after the last began,
    /// in ms; it waits five times as long as the last round took, up to this:
    /// a node busy writing big fan-outs writes what came within it to each
    /// session in one syscall (0: each fan-out as it comes; see `delivery::hub`).
    pub flush_interval_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            outbox_frames: 1024,
            outbox_bytes: 8 * 1024 * 1024,
            max_frame_bytes: 64 * 1024,
            max_connections: 16_000,
            max_sessions_per_user: 32,
            max_sessions_per_app: 0,
            heartbeat_ms: 20_000,
            idle_timeout_ms: 60_000,
            send_rate_per_sec: 20,
            send_burst: 40,
            frame_rate_per_sec: 50,
            frame_burst: 100,
            typing_interval_ms: 1_000,
            presence_debounce_ms: 3_000,
            max_bad_frames: 20,
            resume_max_messages: 5_000,
            write_timeout_ms: 10_000,
            max_inflight_sends: 64,
            direct_writes: true,
            flush_interval_ms: 20,
        }
    }
}

impl GatewayConfig {
    /// What types alone cannot check: (key, reason) of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let rules: [(bool, &str, &str); 15] = [
            (self.outbox_frames == 0, "gateway.outbox_frames", "must be at least 1"),
            (
                self.outbox_bytes < self.max_frame_bytes,
                "gateway.outbox_bytes",
                "must be at least gateway.max_frame_bytes",
            ),
            (self.outbox_bytes > u32::MAX as usize, "gateway.outbox_bytes", "must be below 4 GiB"),
            (self.max_frame_bytes < 1024, "gateway.max_frame_bytes", "must be at least 1024"),
            (self.max_connections == 0, "gateway.max_connections", "must be at least 1"),
            (self.heartbeat_ms == 0, "gateway.heartbeat_ms", "must be at least 1"),
            (
                self.idle_timeout_ms <= self.heartbeat_ms,
                "gateway.idle_timeout_ms",
                "must be larger than gateway.heartbeat_ms",
            ),
            (self.send_rate_per_sec == 0, "gateway.send_rate_per_sec", "must be at least 1"),
            (self.send_burst == 0, "gateway.send_burst", "must be at least 1"),
            (self.frame_rate_per_sec == 0, "gateway.frame_rate_per_sec", "must be at least 1"),
            (self.frame_burst == 0, "gateway.frame_burst", "must be at least 1"),
            // A rate limiter's period: governor refuses (panics on) one past 584 years.
            (
                self.typing_interval_ms > 86_400_000,
                "gateway.typing_interval_ms",
                "must be at most 86400000 (a day)",
            ),
            (self.resume_max_messages == 0, "gateway.resume_max_messages", "must be at least 1"),
            (self.max_inflight_sends == 0, "gateway.max_inflight_sends", "must be at least 1"),
            (self.flush_interval_ms > 1_000, "gateway.flush_interval_ms", "must be at most 1000"),
        ];
        match rules.into_iter().find(|(bad, _, _)| *bad) {
            Some((_, key, reason)) => Err((key, reason)),
            None => Ok(()),
        }
    }
}
