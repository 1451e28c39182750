//! A session's frame budget, and what its refusals told the client.
//!
//! Every client frame spends one token of the session's own bucket
//! (`gateway.frame_rate_per_sec`, burst `gateway.frame_burst`) before it is
//! decoded, so frames that change nothing (a `typing` within its interval, a
//! `read` of an old position) still cost their sender. It is per session, not
//! per user: a flooding connection needs no lock or map lookup to be refused.
//!
//! A refusal announces `retry_after_ms`, rounded up, so a client that waits
//! that long is admitted. Coming back at or after the announced instant is
//! no fault, even when refused again (another session of the user may have
//! spent the shared send bucket meanwhile); coming back earlier is a strike
//! toward flooding (4100). Within a refusal window only the first refused
//! frame is answered: a flood costs the server a read per frame, not a write.

use std::time::{Duration, Instant};

use axum::extract::ws::Message as WsMessage;
use serde::Deserialize;

use super::GatewayConfig;
use super::handlers::Answers;
use super::limits::Refused;
use crate::protocol::{RequestId, ServerFrame};

/// The frame bucket as GCRA: one frame per `period`, up to `tolerance` ahead
/// of it (the burst); the whole state per session is one instant.
#[derive(Clone, Copy, Debug)]
pub struct FrameQuota {
    period: Duration,
    tolerance: Duration,
}

impl FrameQuota {
    /// The quota as configured.
    pub fn new(config: &GatewayConfig) -> Self {
        let period = (Duration::from_secs(1) / config.frame_rate_per_sec.max(1)).max(Duration::from_nanos(1));
        let tolerance = period.saturating_mul(config.frame_burst.max(1) - 1);
        Self { period, tolerance }
    }
}

/// A session's frame bucket and the instants its refusals announced.
pub(super) struct Budget {
    /// When the bucket is full again (GCRA's theoretical arrival time).
    full_at: Instant,
    /// When the last answered frame refusal said one more would be admitted.
    frames_again: Option<Instant>,
    /// When the last refused send said the user's send bucket admits one more.
    sends_again: Option<Instant>,
}

/// A frame the budget refused.
pub(super) struct FrameRefused {
    /// The refusal to answer; `None` within the window an earlier answer announced.
    answer: Option<Refused>,
    /// Whether the frame came before the announced instant.
    strike: bool,
}

impl Budget {
    /// A full bucket at `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self { full_at: now, frames_again: None, sends_again: None }
    }

    /// Spends one frame arriving at `now`.
    pub(super) fn spend(&mut self, quota: FrameQuota, now: Instant) -> Result<(), FrameRefused> {
        let ahead = self.full_at.saturating_duration_since(now);
        if ahead <= quota.tolerance {
            self.full_at = self.full_at.max(now) + quota.period;
            return Ok(());
        }
        // Nothing was admitted since the last answer, so a frame before its
        // instant is early by definition: a strike, not answered again.
        if self.frames_again.is_some_and(|again| now < again) {
            return Err(FrameRefused { answer: None, strike: true });
        }
        let refused = Refused::new(now, ahead - quota.tolerance);
        self.frames_again = Some(refused.again());
        Err(FrameRefused { answer: Some(refused), strike: false })
    }

    /// Takes note of a send refused by the user's send bucket; true (a
    /// strike) when it came before the previous refusal's announced instant.
    pub(super) fn send_refused(&mut self, refused: Refused) -> bool {
        let early = self.sends_again.is_some_and(|again| refused.at < again);
        self.sends_again = Some(refused.again());
        early
    }
}

impl FrameRefused {
    /// `rate_limited` (echoing the frame's `id`) for the first frame of a
    /// refusal window, nothing for the others.
    pub(super) fn answers(self, message: &WsMessage) -> Answers {
        crate::metrics::metrics().rate_limited.with_label_values(&["frame"]).inc();
        let frames = self.answer.map(|refused| ServerFrame::Error {
            id: request_id(message),
            chat: None,
            code: "rate_limited",
            message: "too many frames".into(),
            retry_after_ms: Some(refused.retry_after_ms),
        });
        Answers {
            frames: frames.into_iter().collect(),
            strikes: u32::from(self.strike),
            ..Answers::default()
        }
    }
}

/// The `id` of a text frame, if it has a readable one (without decoding the rest).
fn request_id(message: &WsMessage) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct WithId {
        id: Option<RequestId>,
    }
    let WsMessage::Text(text) = message else {
        return None;
    };
    serde_json::from_str::<WithId>(text).ok()?.id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(rate: u32, burst: u32) -> FrameQuota {
        FrameQuota::new(&GatewayConfig {
            frame_rate_per_sec: rate,
            frame_burst: burst,
            ..GatewayConfig::default()
        })
    }

    #[test]
    fn a_burst_then_one_frame_per_period() {
        let q = quota(10, 3);
        let t0 = Instant::now();
        let mut budget = Budget::new(t0);
        for _ in 0..3 {
            assert!(budget.spend(q, t0).is_ok());
        }
        let refused = budget.spend(q, t0).unwrap_err();
        assert_eq!(refused.answer.map(|r| r.retry_after_ms), Some(100));
        assert!(!refused.strike, "nothing was announced before");
        // Just before the announced instant: a strike, not answered.
        let early = budget.spend(q, t0 + Duration::from_millis(99)).unwrap_err();
        assert!(early.strike && early.answer.is_none());
        // At the instant: admitted, and one more 100 ms later.
        assert!(budget.spend(q, t0 + Duration::from_millis(100)).is_ok());
        assert!(budget.spend(q, t0 + Duration::from_millis(200)).is_ok());
        // A quiet second refills the burst.
        let later = t0 + Duration::from_secs(2);
        for _ in 0..3 {
            assert!(budget.spend(q, later).is_ok());
        }
        assert!(budget.spend(q, later).is_err());
    }

    #[test]
    fn the_retry_is_rounded_up_and_a_window_answered_once() {
        // 3 a second: 333.33 ms per frame, announced as 334.
        let q = quota(3, 1);
        let t0 = Instant::now();
        let mut budget = Budget::new(t0);
        assert!(budget.spend(q, t0).is_ok());
        let refused = budget.spend(q, t0).unwrap_err();
        let ms = refused.answer.map(|r| r.retry_after_ms);
        assert_eq!(ms, Some(334));
        for early in [1, 100, 333] {
            let again = budget.spend(q, t0 + Duration::from_millis(early)).unwrap_err();
            assert!(again.strike && again.answer.is_none(), "at {early} ms");
        }
        assert!(budget.spend(q, t0 + Duration::from_millis(334)).is_ok());
    }

    #[test]
    fn a_send_refused_before_the_announced_instant_is_a_strike() {
        let t0 = Instant::now();
        let mut budget = Budget::new(t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(!budget.send_refused(Refused { at: at(0), retry_after_ms: 50 }), "the first refusal");
        assert!(budget.send_refused(Refused { at: at(10), retry_after_ms: 40 }), "resent at once");
        assert!(!budget.send_refused(Refused { at: at(50), retry_after_ms: 30 }), "waited as told");
        assert!(!budget.send_refused(Refused { at: at(80), retry_after_ms: 30 }), "exactly as told");
        assert!(budget.send_refused(Refused { at: at(109), retry_after_ms: 1 }), "1 ms early");
    }
}
