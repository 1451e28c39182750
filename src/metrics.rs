//! Every Prometheus metric weft exports, with its name and help text, in one
//! place; registered once, on first use, in one registry per process.
//!
//! Names follow Prometheus conventions: the `weft_` prefix, `_total` for
//! counters, `_seconds` and `_bytes` units. Labels stay of bounded
//! cardinality: frame types, close reasons, Redis commands, store
//! operations, route templates (never raw paths), peer node ids.
//! `helm/weft/dashboards/weft.json` queries these names; `tests/observability.rs`
//! checks that each one it uses exists on a live node.

mod striped;

use std::sync::LazyLock;
use std::time::Instant;

pub use striped::StripedHistogram;

use prometheus::{
    Encoder as _, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Who may read `/metrics` (`[metrics]` in the config).
#[derive(Clone, Debug, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Bearer token `/metrics` requires (the admin key is accepted too).
    /// Empty, and no admin key: `/metrics` is open (a laptop, never production).
    pub token: String,
}

/// The label values known in advance, exported at zero from the start (so
/// that dashboards and alerts see a series before its first event).
const CLOSE_REASONS: &[&str] = &[
    "normal",
    "frame_too_large",
    "invalid_payload",
    "drain",
    "token_expired",
    "flooding",
    "slow_consumer",
    "idle_timeout",
];
const FRAMES_IN: &[&str] = &[
    "send",
    "sync",
    "hello",
    "typing",
    "delivered",
    "read",
    "search",
    "edit",
    "delete",
    "react",
    "unreact",
    "add_members",
    "remove_member",
    "set_role",
    "update_chat",
    "leave",
    "register_device",
    "unregister_device",
    "notification_settings",
    "invalid",
    "binary",
];
const FRAMES_OUT: &[&str] = &[
    "welcome",
    "ack",
    "message",
    "messages",
    "typing",
    "presence",
    "receipt",
    "search_results",
    "device_registered",
    "device_unregistered",
    "notification_settings",
    "message_edited",
    "message_deleted",
    "thread_updated",
    "reaction",
    "chat_updated",
    "member_joined",
    "member_left",
    "role_changed",
    "error",
];
const SEARCH_OPS: &[&str] = &["index", "search"];
const RATE_LIMITS: &[&str] = &["send", "typing", "frame", "connection", "http_connection"];
/// The Redis commands weft sends (anything else counts as `other`).
pub const REDIS_OPS: &[&str] = &[
    "GET",
    "SET",
    "DEL",
    "MGET",
    "EXISTS",
    "EVALSHA",
    "EVAL",
    "SCRIPT",
    "SADD",
    "SREM",
    "SMEMBERS",
    "SCARD",
    "ZADD",
    "ZRANGEBYSCORE",
    "HDEL",
    "LRANGE",
    "PING",
    "INCR",
    "pipeline",
    "other",
];
/// Outcomes of a webhook delivery attempt.
pub const WEBHOOK_OUTCOMES: &[&str] = &["delivered", "failed", "gave_up", "disabled", "dropped"];

/// The store's operations (the `Store` trait's methods).
pub const STORE_OPS: &[&str] = &[
    "insert_application",
    "application_by_token",
    "application_by_id",
    "update_application",
    "application_ids",
    "edit_message",
    "delete_message",
    "message_versions",
    "replies",
    "insert_attachment",
    "attachment",
    "attach",
    "detach",
    "delete_attachment",
    "insert_webhook",
    "webhook",
    "webhooks",
    "update_webhook",
    "delete_webhook",
    "put_device",
    "devices",
    "delete_device",
    "notification_settings",
    "put_notification_settings",
    "insert_chat",
    "update_chat",
    "chat",
    "chats",
    "max_chat_number",
    "insert_messages",
    "message",
    "messages",
    "max_message_number",
    "add_member",
    "remove_member",
    "member",
    "set_role",
    "members",
    "is_member",
    "user_chats",
    "direct_chat",
    "claim_direct_chat",
    "advance_read_state",
    "read_state",
    "read_states",
];

/// Latency buckets, in seconds: 100 µs to 10 s.
const LATENCY: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Batch sizes, in messages.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// The metrics; see [`metrics`].
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket sessions.
    pub connections: IntGauge,
    /// Sessions opened.
    pub sessions_opened: IntCounter,
    /// Sessions closed, by reason.
    pub sessions_closed: IntCounterVec,
    /// Frames received from clients, by type.
    pub frames_in: IntCounterVec,
    /// Frames sent to clients, by type.
    pub frames_out: IntCounterVec,
    /// `frames_out{type="message"}`, held: it counts every live delivery, so
    /// the hot path skips the label lookup.
    pub messages_out: IntCounter,
    /// Messages the batch writer committed.
    pub messages_persisted: IntCounter,
    /// Messages per store commit.
    pub batch_messages: Histogram,
    /// Time of one store commit.
    pub batch_commit_seconds: Histogram,
    /// From a message's creation (send accepted) to its frame handed to a recipient's socket.
    pub delivery_seconds: StripedHistogram,
    /// Frames sent to a peer node.
    pub quic_frames_sent: IntCounterVec,
    /// Frames received from a peer node.
    pub quic_frames_received: IntCounterVec,
    /// Bytes sent to a peer node.
    pub quic_bytes_sent: IntCounterVec,
    /// Bytes received from a peer node.
    pub quic_bytes_received: IntCounterVec,
    /// Connections to a peer node opened again after one was lost.
    pub quic_reconnects: IntCounterVec,
    /// Frames dropped because a peer's queue was full.
    pub quic_frames_dropped: IntCounterVec,
    /// Resync signals sent to a peer for a chat whose live frames to it were dropped.
    pub quic_resyncs: IntCounterVec,
    /// Live cluster members, this node included.
    pub cluster_members: IntGauge,
    /// Redis commands that failed, by command.
    pub redis_errors: IntCounterVec,
    /// Redis round trips, by command (`pipeline` for pipelines).
    pub redis_seconds: HistogramVec,
    /// Store calls that failed, by operation.
    pub store_errors: IntCounterVec,
    /// Store calls, by operation.
    pub store_seconds: HistogramVec,
    /// Client actions refused by a rate limit, by kind.
    pub rate_limited: IntCounterVec,
    /// Sessions closed because the client read too slowly.
    pub slow_consumer_disconnects: IntCounter,
    /// Changed HTTPS certificate files looked at, by outcome (`ok`, `refused`).
    pub tls_reloads: IntCounterVec,
    /// HTTP requests, by route template and status.
    pub http_requests: IntCounterVec,
    /// HTTP request time, by route template.
    pub http_request_seconds: HistogramVec,
    /// Fetches of an identity provider's key set that failed (each one; the warning is rate-limited).
    pub jwks_fetch_failures: IntCounter,
    /// Messages committed by this node and not yet handed to the search index.
    pub search_lag_messages: IntGauge,
    /// How long the oldest message not yet indexed has waited (0: none).
    pub search_lag_seconds: Gauge,
    /// Documents indexed (live and caught up).
    pub search_indexed: IntCounter,
    /// Search index calls that failed, by operation (`index`, `search`).
    pub search_errors: IntCounterVec,
    /// Time of a search request (membership, index, messages).
    pub search_seconds: Histogram,
    /// Webhook events put into the queue (one per event and webhook).
    pub webhook_events_queued: IntCounter,
    /// Notices dropped before the queue (hand-off full, queue down past retries).
    pub webhook_notices_dropped: IntCounter,
    /// Delivery attempts, by outcome (`delivered`, `failed`, `gave_up`, `disabled`, `dropped`).
    pub webhook_deliveries: IntCounterVec,
    /// Time of one delivery attempt.
    pub webhook_attempt_seconds: Histogram,
    /// From an event to its first successful delivery.
    pub webhook_lag_seconds: Histogram,
    /// Lanes with events waiting (the whole cluster's queue).
    pub webhook_queue_lanes: IntGauge,
    /// Of them, due now (neither leased nor backing off).
    pub webhook_queue_due: IntGauge,
    /// How long the oldest event still being retried has been failing (0: none).
    pub webhook_retry_age_seconds: Gauge,
    /// Push notifications queued (one per user and chat per gathering window).
    pub alerts_queued: IntCounter,
    /// Messages or pushes dropped before the queue (hand-off full, queue down).
    pub alerts_dropped: IntCounter,
    /// Away members not pushed, by reason.
    pub alerts_skipped: IntCounterVec,
    /// Push notifications to devices, by outcome.
    pub push_deliveries: IntCounterVec,
    /// Email digest checks, by outcome.
    pub email_digests: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    register(registry, metric)
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    register(registry, metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    register(registry, metric)
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let metric = Histogram::with_opts(opts).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    register(registry, metric)
}

fn histograms(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY.to_vec());
    let metric = HistogramVec::new(opts, labels).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    register(registry, metric)
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    // Names are constants of this module and registered once: a clash is a bug here.
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| unreachable!("registering a metric: {e}"));
    metric
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            // RSS, CPU, open files of this process (for the per-connection figures).
            let process = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(process));
        }
        let frames_out = counters(&r, "weft_frames_out_total", "Frames sent to clients, by type.", &["type"]);
        Metrics {
            connections: gauge(&r, "weft_connections", "Open WebSocket sessions."),
            sessions_opened: counter(&r, "weft_sessions_opened_total", "WebSocket sessions opened."),
            sessions_closed: counters(
                &r,
                "weft_sessions_closed_total",
                "WebSocket sessions closed, by reason.",
                &["reason"],
            ),
            frames_in: counters(
                &r,
                "weft_frames_in_total",
                "Frames received from clients, by type.",
                &["type"],
            ),
            messages_out: frames_out.with_label_values(&["message"]),
            frames_out,
            messages_persisted: counter(
                &r,
                "weft_messages_persisted_total",
                "Messages committed to the store.",
            ),
            batch_messages: histogram(&r, "weft_batch_messages", "Messages per store commit.", BATCH),
            batch_commit_seconds: histogram(
                &r,
                "weft_batch_commit_seconds",
                "Time of one batch commit to the store.",
                LATENCY,
            ),
            delivery_seconds: register(
                &r,
                StripedHistogram::new(
                    "weft_delivery_seconds",
                    "From a message's creation to its frame handed to a recipient's socket.",
                    LATENCY,
                )
                .unwrap_or_else(|e| unreachable!("metric weft_delivery_seconds: {e}")),
            ),
            quic_frames_sent: counters(
                &r,
                "weft_quic_frames_sent_total",
                "Frames sent to a peer node.",
                &["peer"],
            ),
            quic_frames_received: counters(
                &r,
                "weft_quic_frames_received_total",
                "Frames received from a peer node.",
                &["peer"],
            ),
            quic_bytes_sent: counters(
                &r,
                "weft_quic_bytes_sent_total",
                "Bytes sent to a peer node.",
                &["peer"],
            ),
            quic_bytes_received: counters(
                &r,
                "weft_quic_bytes_received_total",
                "Bytes received from a peer node.",
                &["peer"],
            ),
            quic_reconnects: counters(
                &r,
                "weft_quic_reconnects_total",
                "Connections to a peer node opened again after one was lost.",
                &["peer"],
            ),
            quic_frames_dropped: counters(
                &r,
                "weft_quic_frames_dropped_total",
                "Frames dropped because a peer's queue was full.",
                &["peer"],
            ),
            quic_resyncs: counters(
                &r,
                "weft_quic_resyncs_total",
                "Resync signals queued for a peer node, one per chat whose live frames to it were dropped \
                 (its sessions of the chat get a resync frame).",
                &["peer"],
            ),
            cluster_members: gauge(&r, "weft_cluster_members", "Live cluster members, this node included."),
            redis_errors: counters(
                &r,
                "weft_redis_errors_total",
                "Redis commands that failed, by command.",
                &["op"],
            ),
            redis_seconds: histograms(&r, "weft_redis_seconds", "Redis round trips, by command.", &["op"]),
            store_errors: counters(
                &r,
                "weft_store_errors_total",
                "Store calls that failed, by operation.",
                &["op"],
            ),
            store_seconds: histograms(&r, "weft_store_seconds", "Store calls, by operation.", &["op"]),
            rate_limited: counters(
                &r,
                "weft_rate_limited_total",
                "Client actions refused by a rate limit.",
                &["kind"],
            ),
            tls_reloads: counters(
                &r,
                "weft_tls_reloads_total",
                "Changed HTTPS certificate files looked at, by outcome (ok: now served; refused: the old pair stays).",
                &["outcome"],
            ),
            slow_consumer_disconnects: counter(
                &r,
                "weft_slow_consumer_disconnects_total",
                "Sessions closed because the client read too slowly (4200).",
            ),
            http_requests: counters(
                &r,
                "weft_http_requests_total",
                "HTTP requests, by route and status.",
                &["route", "status"],
            ),
            http_request_seconds: histograms(
                &r,
                "weft_http_request_seconds",
                "HTTP request time, by route.",
                &["route"],
            ),
            jwks_fetch_failures: counter(
                &r,
                "weft_jwks_fetch_failures_total",
                "Fetches of an application's JWKS URL that failed (refused, unreachable, bad answer).",
            ),
            search_lag_messages: gauge(
                &r,
                "weft_search_index_lag_messages",
                "Messages committed by this node and not yet handed to the search index.",
            ),
            search_lag_seconds: {
                let metric = Gauge::new(
                    "weft_search_index_lag_seconds",
                    "How long the oldest message not yet indexed has waited (0: none).",
                )
                .unwrap_or_else(|e| unreachable!("metric weft_search_index_lag_seconds: {e}"));
                register(&r, metric)
            },
            search_indexed: counter(
                &r,
                "weft_search_indexed_total",
                "Documents indexed (live and caught up).",
            ),
            search_errors: counters(
                &r,
                "weft_search_errors_total",
                "Search index calls that failed, by operation.",
                &["op"],
            ),
            search_seconds: histogram(&r, "weft_search_seconds", "Time of a search request.", LATENCY),
            webhook_events_queued: counter(
                &r,
                "weft_webhook_events_queued_total",
                "Webhook events put into the queue (one per event and webhook).",
            ),
            webhook_notices_dropped: counter(
                &r,
                "weft_webhook_notices_dropped_total",
                "Events dropped before the webhook queue (hand-off full, or the queue down past retries).",
            ),
            webhook_deliveries: counters(
                &r,
                "weft_webhook_deliveries_total",
                "Webhook delivery attempts by outcome.",
                &["outcome"],
            ),
            webhook_attempt_seconds: histogram(
                &r,
                "weft_webhook_attempt_seconds",
                "Time of one webhook delivery attempt.",
                LATENCY,
            ),
            webhook_lag_seconds: histogram(
                &r,
                "weft_webhook_lag_seconds",
                "From an event to its first successful webhook delivery.",
                LATENCY,
            ),
            webhook_queue_lanes: gauge(&r, "weft_webhook_queue_lanes", "Webhook lanes with events waiting."),
            webhook_queue_due: gauge(
                &r,
                "weft_webhook_queue_due_lanes",
                "Webhook lanes due now (neither being delivered nor backing off).",
            ),
            webhook_retry_age_seconds: {
                let metric = Gauge::new(
                    "weft_webhook_retry_age_seconds",
                    "How long the oldest webhook event still being retried has been failing (0: none).",
                )
                .unwrap_or_else(|e| unreachable!("metric weft_webhook_retry_age_seconds: {e}"));
                register(&r, metric)
            },
            alerts_queued: counter(
                &r,
                "weft_push_queued_total",
                "Push notifications queued (one per away user and chat per gathering window).",
            ),
            alerts_dropped: counter(
                &r,
                "weft_push_dropped_total",
                "Messages or push notifications dropped before the queue (hand-off full, or the queue down).",
            ),
            alerts_skipped: counters(
                &r,
                "weft_push_skipped_total",
                "Away members not pushed, by reason (muted, not_mentioned, push_off, quiet_hours, no_device, large_chat).",
                &["reason"],
            ),
            push_deliveries: counters(
                &r,
                "weft_push_deliveries_total",
                "Push notifications to devices by outcome (delivered, retried, failed, device_removed, online_again).",
                &["outcome"],
            ),
            email_digests: counters(
                &r,
                "weft_email_digests_total",
                "Email digest checks by outcome (sent, retried, failed, nothing_unread, online_again, email_off, not_configured).",
                &["outcome"],
            ),
            registry: r,
        }
    }

    /// Creates the series of every label value known in advance.
    fn with_known_labels(self) -> Self {
        for reason in CLOSE_REASONS {
            self.sessions_closed.with_label_values(&[reason]);
        }
        for kind in FRAMES_IN {
            self.frames_in.with_label_values(&[kind]);
        }
        for kind in FRAMES_OUT {
            self.frames_out.with_label_values(&[kind]);
        }
        for kind in RATE_LIMITS {
            self.rate_limited.with_label_values(&[kind]);
        }
        for outcome in ["ok", "refused"] {
            self.tls_reloads.with_label_values(&[outcome]);
        }
        for op in REDIS_OPS {
            self.redis_errors.with_label_values(&[op]);
            self.redis_seconds.with_label_values(&[op]);
        }
        for op in STORE_OPS {
            self.store_errors.with_label_values(&[op]);
            self.store_seconds.with_label_values(&[op]);
        }
        for op in SEARCH_OPS {
            self.search_errors.with_label_values(&[op]);
        }
        for outcome in WEBHOOK_OUTCOMES {
            self.webhook_deliveries.with_label_values(&[outcome]);
        }
        for reason in ["muted", "not_mentioned", "push_off", "quiet_hours", "no_device", "large_chat"] {
            self.alerts_skipped.with_label_values(&[reason]);
        }
        for outcome in ["delivered", "retried", "failed", "device_removed", "online_again"] {
            self.push_deliveries.with_label_values(&[outcome]);
        }
        for outcome in
            ["sent", "retried", "failed", "nothing_unread", "online_again", "email_off", "not_configured"]
        {
            self.email_digests.with_label_values(&[outcome]);
        }
        self
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding our own registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics::new().with_known_labels());
    &METRICS
}

/// Times a call into `histogram` and counts its failure into `errors`.
pub async fn timed<T, E>(
    op: &str,
    histogram: &HistogramVec,
    errors: &IntCounterVec,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let start = Instant::now();
    let result = call.await;
    histogram.with_label_values(&[op]).observe(start.elapsed().as_secs_f64());
    if result.is_err() {
        errors.with_label_values(&[op]).inc();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_its_help() {
        let m = metrics();
        m.sessions_closed.with_label_values(&["normal"]).inc();
        m.redis_seconds.with_label_values(&["GET"]).observe(0.001);
        let text = m.render();
        assert!(text.contains("# HELP weft_connections Open WebSocket sessions."), "{text}");
        assert!(text.contains("weft_sessions_closed_total{reason=\"normal\"}"), "{text}");
        assert!(text.contains("weft_redis_seconds_bucket{op=\"GET\",le=\"0.001\"}"), "{text}");
    }
}
