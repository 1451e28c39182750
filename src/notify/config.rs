//! `[webhooks]` in the config.

use serde::Deserialize;

use super::target::Policy;

/// Tuning and rules of webhook delivery.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Accept `http://` URLs (development, tests); production wants https only.
    pub allow_http: bool,
    /// Accept and connect to loopback, private and link-local addresses.
    pub allow_private: bool,
    /// One delivery attempt may take this long (connect and answer), in ms.
    pub timeout_ms: u64,
    /// The first retry waits about this long; each next one twice as long, in ms.
    pub backoff_base_ms: u64,
    /// No retry waits longer than this, in ms.
    pub backoff_max_ms: u64,
    /// An event still failing this long after its first failure is given up, in ms (24 h).
    pub retry_for_ms: u64,
    /// A webhook failing without a success for this long is disabled, in ms (24 h).
    pub disable_after_ms: u64,
    /// A node holds a lane this long before another node may take it over, in ms.
    /// Must be well above `timeout_ms`.
    pub lease_ms: u64,
    /// Deliveries in flight at once on this node.
    pub concurrency: usize,
    /// A lane delivers at most this many events in a row before it is given back (fairness).
    pub lane_burst: usize,
    /// How often an idle worker looks for due lanes, in ms (a notice pushed
    /// on this node wakes it at once).
    pub poll_ms: u64,
    /// How long a node trusts its copy of an application's webhooks, in ms: a
    /// webhook created or deleted on another node takes effect within this.
    pub cache_ms: u64,
    /// Notices that may wait between the domain and the queue (past it they are dropped and counted).
    pub handoff: usize,
    /// After a secret is rotated, the old one still signs for this long, in ms.
    pub rotation_overlap_ms: u64,
    /// The nice value (0–19) of the thread that delivers webhooks, pushes and
    /// digests: above 0 it takes only the CPU live traffic leaves. 0 runs it
    /// at the node's priority.
    pub delivery_nice: i32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private: false,
            timeout_ms: 10_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_600_000,
            retry_for_ms: 86_400_000,
            disable_after_ms: 86_400_000,
            lease_ms: 30_000,
            concurrency: 64,
            lane_burst: 100,
            poll_ms: 250,
            cache_ms: 1_000,
            handoff: 65_536,
            rotation_overlap_ms: 86_400_000,
            delivery_nice: 10,
        }
    }
}

impl WebhooksConfig {
    /// The URL rules.
    pub fn policy(&self) -> Policy {
        Policy { allow_http: self.allow_http, allow_private: self.allow_private }
    }
}
