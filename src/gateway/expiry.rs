//! When a session's token expires, and when to warn it: a session holds one
//! [`Expiry`], checked on each heartbeat tick and renewed by an in-band `refresh`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::ids::Timestamp;

/// What a tick finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Due {
    /// Nothing to do.
    Nothing,
    /// Tell the client: its token expires at this time (once per token).
    Notice(Timestamp),
    /// The token expired: close (4001).
    Expired,
}

/// A session's token expiry; renewed in place (the loop borrows the session shared).
pub(super) struct Expiry {
    /// Expiry in ms since the epoch; `i64::MAX` for a token without one.
    at_ms: AtomicI64,
    /// How long before it the client is told, in ms.
    notice_ms: AtomicI64,
    /// The current token's notice was sent.
    noticed: AtomicBool,
}

impl Expiry {
    /// The expiry of a token valid until `at`, told `notice_secs` before it
    /// (at most half the time left, so a short token is not warned at once).
    pub(super) fn new(at: Option<Timestamp>, notice_secs: u64) -> Self {
        let expiry = Self {
            at_ms: AtomicI64::new(i64::MAX),
            notice_ms: AtomicI64::new(0),
            noticed: AtomicBool::new(false),
        };
        expiry.renew(at, notice_secs, Timestamp::now());
        expiry
    }

    /// A new token, valid until `at`.
    pub(super) fn renew(&self, at: Option<Timestamp>, notice_secs: u64, now: Timestamp) {
        let at_ms = at.map_or(i64::MAX, Timestamp::millis);
        let left = at_ms.saturating_sub(now.millis()).max(0);
        let notice = i64::try_from(notice_secs.saturating_mul(1000)).unwrap_or(i64::MAX).min(left / 2);
        self.at_ms.store(at_ms, Ordering::Release);
        self.notice_ms.store(notice, Ordering::Release);
        self.noticed.store(false, Ordering::Release);
    }

    /// What is due at `now`.
    pub(super) fn due(&self, now: Timestamp) -> Due {
        let at = self.at_ms.load(Ordering::Acquire);
        if at == i64::MAX {
            return Due::Nothing;
        }
        if at < now.millis() {
            return Due::Expired;
        }
        let notice = self.notice_ms.load(Ordering::Acquire);
        if now.millis() >= at.saturating_sub(notice) && !self.noticed.swap(true, Ordering::AcqRel) {
            return Due::Notice(Timestamp(at));
        }
        Due::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_once_then_expire_and_renew_starts_over() {
        let now = Timestamp::now();
        let at = Timestamp(now.millis() + 10_000);
        let expiry = Expiry::new(Some(at), 60);
        // Half the time left at most: told at 5 s before.
        assert_eq!(expiry.due(now), Due::Nothing);
        let late = Timestamp(now.millis() + 6_000);
        assert_eq!(expiry.due(late), Due::Notice(at));
        assert_eq!(expiry.due(late), Due::Nothing);
        assert_eq!(expiry.due(Timestamp(at.millis() + 1)), Due::Expired);
        let later = Timestamp(at.millis() + 20_000);
        expiry.renew(Some(later), 60, late);
        assert_eq!(expiry.due(Timestamp(at.millis() + 1)), Due::Nothing);
        assert_eq!(Expiry::new(None, 60).due(Timestamp(i64::MAX - 1)), Due::Nothing);
    }
}
