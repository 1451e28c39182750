//! Per-user limits shared by all sessions of a node: the send rate (token
//! bucket) and the typing interval. Both are keyed `governor` limiters.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::GatewayConfig;
use crate::ids::{AppId, ChatNumber, UserId};

/// Keys remembered before stale ones are dropped.
const PRUNE_ABOVE: usize = 100_000;

/// The node's per-user limiters; cheap to clone.
#[derive(Clone)]
pub struct Limits {
    sends: Arc<DefaultKeyedRateLimiter<(AppId, UserId)>>,
    typing: Arc<DefaultKeyedRateLimiter<(AppId, UserId, ChatNumber)>>,
    clock: DefaultClock,
}

impl Limits {
    /// Limiters as configured.
    pub fn new(config: &GatewayConfig) -> Self {
        let rate = NonZeroU32::new(config.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.send_burst).unwrap_or(NonZeroU32::MIN);
        let typing = Duration::from_millis(config.typing_interval_ms.max(1));
        let typing = Quota::with_period(typing).map_or(Quota::per_second(NonZeroU32::MIN), |q| q);
        Self {
            sends: Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))),
            typing: Arc::new(RateLimiter::keyed(typing.allow_burst(NonZeroU32::MIN))),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one send of `user`; `Err(wait)` when over the rate.
    pub fn send(&self, app: &AppId, user: &UserId) -> Result<(), Duration> {
        self.sends
            .check_key(&(app.clone(), user.clone()))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
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
        let wait = limits.send(&app, &alice).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limits.send(&app, &bob).is_ok(), "per user");
        assert!(limits.typing(&app, &alice, ChatNumber(1)));
        assert!(!limits.typing(&app, &alice, ChatNumber(1)));
        assert!(limits.typing(&app, &alice, ChatNumber(2)), "per chat");
    }
}
