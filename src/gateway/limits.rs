//! Per-user limits shared by all sessions of a node: the send rate (token
//! bucket) and the typing interval. Both are keyed `governor` limiters.
//! (Each session's own frame budget is `budget`.)

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::GatewayConfig;
use super::budget::FrameQuota;
use crate::ids::{AppId, ChatNumber, UserId};

/// Keys remembered before stale ones are dropped.
const PRUNE_ABOVE: usize = 100_000;

/// The node's per-user limiters; cheap to clone.
#[derive(Clone)]
pub struct Limits {
    sends: Arc<DefaultKeyedRateLimiter<(AppId, UserId)>>,
    typing: Arc<DefaultKeyedRateLimiter<(AppId, UserId, ChatNumber)>>,
    clock: DefaultClock,
    frames: FrameQuota,
}

/// A refusal by a token bucket, as announced to the client.
#[derive(Clone, Copy, Debug)]
pub struct Refused {
    /// When the bucket refused.
    pub at: Instant,
    /// How long until the bucket admits one more, in whole ms rounded up.
    pub retry_after_ms: u64,
}

impl Refused {
    /// A refusal at `at` by a bucket that admits one more after `wait`.
    pub fn new(at: Instant, wait: Duration) -> Self {
        Self { at, retry_after_ms: ceil_millis(wait) }
    }

    /// The instant announced: from then on the bucket admits one (unless
    /// another session of the same user spent it first).
    pub fn again(&self) -> Instant {
        self.at.checked_add(Duration::from_millis(self.retry_after_ms)).unwrap_or(self.at)
    }
}

/// `wait` in whole milliseconds, rounded up (at least 1): a client that waits
/// that long finds the bucket ready. Rounding down would send it back a
/// fraction of a millisecond early, to be refused again.
pub fn ceil_millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX).max(1)
}

/// The send bucket of one user.
fn send_quota(config: &GatewayConfig) -> Quota {
    let rate = NonZeroU32::new(config.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(config.send_burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Limits {
    /// Limiters as configured.
    pub fn new(config: &GatewayConfig) -> Self {
        let typing = Duration::from_millis(config.typing_interval_ms.max(1));
        let typing = Quota::with_period(typing).map_or(Quota::per_second(NonZeroU32::MIN), |q| q);
        Self {
            sends: Arc::new(RateLimiter::keyed(send_quota(config))),
            typing: Arc::new(RateLimiter::keyed(typing.allow_burst(NonZeroU32::MIN))),
            clock: DefaultClock::default(),
            frames: FrameQuota::new(config),
        }
    }

    /// Takes one send of `user`; refused when over the rate.
    pub fn send(&self, app: &AppId, user: &UserId) -> Result<(), Refused> {
        self.sends.check_key(&(app.clone(), user.clone())).map_err(|not_until| {
            // `wait_time_from` is the exact wait from `at` to the bucket's
            // next conforming instant; `Refused` rounds it up.
            let at = self.clock.now();
            Refused::new(at, not_until.wait_time_from(at))
        })
    }

    /// Each session's frame budget.
    pub(super) fn frames(&self) -> FrameQuota {
        self.frames
    }

    /// Whether a `typing` of `user` in `chat` may be fanned out now.
    pub fn typing(&self, app: &AppId, user: &UserId, chat: ChatNumber) -> bool {
        self.typing.check_key(&(app.clone(), user.clone(), chat)).is_ok()
    }

    /// Drops the state of keys that are back at a full bucket (call now and then).
    pub fn prune(&self) {
        if self.sends.len() > PRUNE_ABOVE {
            self.sends.retain_recent();
        }
        if self.typing.len() > PRUNE_ABOVE {
            self.typing.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_past_the_burst_are_refused_with_a_wait() {
        let config = GatewayConfig { send_rate_per_sec: 1, send_burst: 3, ..GatewayConfig::default() };
        let limits = Limits::new(&config);
        let (app, alice, bob) =
            (AppId::generate(), UserId::parse("alice").unwrap(), UserId::parse("bob").unwrap());
        for _ in 0..3 {
            assert!(limits.send(&app, &alice).is_ok());
        }
        let refused = limits.send(&app, &alice).unwrap_err();
        assert!((1..=1000).contains(&refused.retry_after_ms), "{refused:?}");
        assert!(limits.send(&app, &bob).is_ok(), "per user");
        assert!(limits.typing(&app, &alice, ChatNumber(1)));
        assert!(!limits.typing(&app, &alice, ChatNumber(1)));
        assert!(limits.typing(&app, &alice, ChatNumber(2)), "per chat");
    }

    #[test]
    fn retry_after_is_the_wait_rounded_up() {
        assert_eq!(ceil_millis(Duration::from_micros(500)), 1);
        assert_eq!(ceil_millis(Duration::from_millis(34)), 34);
        assert_eq!(ceil_millis(Duration::from_micros(34_001)), 35);
        assert_eq!(ceil_millis(Duration::ZERO), 1, "a refusal never says retry now");
    }

    /// governor's `wait_time_from` is the exact time to the next conforming
    /// instant; waiting the announced whole ms is enough, one ms less is not.
    #[test]
    fn waiting_retry_after_ms_finds_the_send_bucket_ready() {
        use governor::clock::FakeRelativeClock;
        // 3 a second: a period of 333.33 ms, which truncating would announce as 333.
        let config = GatewayConfig { send_rate_per_sec: 3, send_burst: 2, ..GatewayConfig::default() };
        let clock = FakeRelativeClock::default();
        let bucket = RateLimiter::dashmap_with_clock(send_quota(&config), clock.clone());
        for _ in 0..2 {
            assert!(bucket.check_key(&"alice").is_ok());
        }
        clock.advance(Duration::from_millis(100));
        for _ in 0..20 {
            let not_until = bucket.check_key(&"alice").unwrap_err();
            let retry_after_ms = ceil_millis(not_until.wait_time_from(clock.now()));
            clock.advance(Duration::from_millis(retry_after_ms - 1));
            assert!(bucket.check_key(&"alice").is_err(), "one ms early is still refused");
            clock.advance(Duration::from_millis(1));
            assert!(bucket.check_key(&"alice").is_ok(), "after {retry_after_ms} ms");
        }
    }
}
