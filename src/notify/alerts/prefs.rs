//! What a user chose, read through a short copy: notification settings and
//! devices, each node caching them for `prefs_cache_ms` (a change through
//! this node is seen at once; through another node, within that).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ids::{AppId, UserId};
use crate::model::{Device, NotificationSettings, QuietHours};
use crate::store::{DynStore, StoreError};

type Key = (AppId, UserId);

/// Copies of one kind, by user, with when each was read.
type Copies<T> = Arc<Mutex<HashMap<Key, (Instant, Arc<T>)>>>;

/// A user's settings and devices, as this node last read them.
#[derive(Clone)]
pub struct Prefs {
    store: DynStore,
    ttl: Duration,
    settings: Copies<NotificationSettings>,
    devices: Copies<Vec<Device>>,
}

impl Prefs {
    /// Copies of what `store` holds, trusted for `ttl`.
    pub fn new(store: DynStore, ttl: Duration) -> Self {
        Self { store, ttl, settings: Arc::default(), devices: Arc::default() }
    }

    /// The store behind the copies.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// A user's settings (the defaults when they never chose).
    pub async fn settings(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Arc<NotificationSettings>, StoreError> {
        let key = (app.clone(), user.clone());
        if let Some(found) = fresh(&self.settings, &key, self.ttl) {
            return Ok(found);
        }
        let read = self.store.notification_settings(app, user).await?;
        let settings = Arc::new(read.unwrap_or_else(|| NotificationSettings::default_for(app, user)));
        keep(&self.settings, key, Arc::clone(&settings), self.ttl);
        Ok(settings)
    }

    /// A user's devices.
    pub async fn devices(&self, app: &AppId, user: &UserId) -> Result<Arc<Vec<Device>>, StoreError> {
        let key = (app.clone(), user.clone());
        if let Some(found) = fresh(&self.devices, &key, self.ttl) {
            return Ok(found);
        }
        let devices = Arc::new(self.store.devices(app, user).await?);
        keep(&self.devices, key, Arc::clone(&devices), self.ttl);
        Ok(devices)
    }

    /// Forgets this node's copy of a user's settings and devices (they changed here).
    pub fn forget(&self, app: &AppId, user: &UserId) {
        let key = (app.clone(), user.clone());
        self.settings.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        self.devices.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
    }
}

fn fresh<T>(map: &Mutex<HashMap<Key, (Instant, Arc<T>)>>, key: &Key, ttl: Duration) -> Option<Arc<T>> {
    let map = map.lock().unwrap_or_else(PoisonError::into_inner);
    map.get(key).filter(|(at, _)| at.elapsed() < ttl).map(|(_, v)| Arc::clone(v))
}

fn keep<T>(map: &Mutex<HashMap<Key, (Instant, Arc<T>)>>, key: Key, value: Arc<T>, ttl: Duration) {
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    if map.len() > 200_000 {
        map.retain(|_, (at, _)| at.elapsed() < ttl);
    }
    map.insert(key, (Instant::now(), value));
}

/// Minutes since midnight of `HH:MM` (00:00–23:59).
pub fn parse_clock(raw: &str) -> Option<u16> {
    let (h, m) = raw.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Checks quiet hours a client sent; the message says what is wrong.
pub fn check_quiet_hours(q: &QuietHours) -> Result<(), String> {
    if parse_clock(&q.from).is_none() || parse_clock(&q.to).is_none() {
        return Err("`quiet_hours.from` and `quiet_hours.to` must be HH:MM (00:00-23:59)".into());
    }
    if q.tz.len() > 64 || jiff::tz::TimeZone::get(&q.tz).is_err() {
        return Err(format!(
            "`quiet_hours.tz` must be an IANA time zone such as Europe/Paris, not `{}`",
            cut(&q.tz)
        ));
    }
    Ok(())
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Whether `at_ms` (ms since the epoch) falls in the quiet hours (from
/// included, to excluded; a span across midnight when `to` < `from`).
pub fn is_quiet(q: &QuietHours, at_ms: i64) -> bool {
    let (Some(from), Some(to)) = (parse_clock(&q.from), parse_clock(&q.to)) else {
        return false;
    };
    let Ok(tz) = jiff::tz::TimeZone::get(&q.tz) else {
        return false;
    };
    let Ok(at) = jiff::Timestamp::from_millisecond(at_ms) else {
        return false;
    };
    let local = at.to_zoned(tz);
    let now = u16::try_from(local.hour()).unwrap_or(0) * 60 + u16::try_from(local.minute()).unwrap_or(0);
    match from.cmp(&to) {
        std::cmp::Ordering::Less => (from..to).contains(&now),
        std::cmp::Ordering::Greater => now >= from || now < to,
        std::cmp::Ordering::Equal => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(from: &str, to: &str, tz: &str) -> QuietHours {
        QuietHours { from: from.into(), to: to.into(), tz: tz.into() }
    }

    #[test]
    fn quiet_hours_follow_the_users_clock() {
        // 2026-01-15T22:30:00Z is 23:30 in Paris (winter, UTC+1) and 17:30 in New York.
        let at = 1_768_516_200_000;
        assert!(is_quiet(&quiet("22:00", "07:00", "Europe/Paris"), at));
        assert!(!is_quiet(&quiet("22:00", "07:00", "America/New_York"), at));
        assert!(is_quiet(&quiet("17:00", "18:00", "America/New_York"), at));
        assert!(!is_quiet(&quiet("18:00", "17:00", "America/New_York"), at));
        assert!(!is_quiet(&quiet("09:00", "09:00", "UTC"), at));
        assert!(check_quiet_hours(&quiet("22:00", "07:00", "Europe/Paris")).is_ok());
        assert!(check_quiet_hours(&quiet("24:00", "07:00", "UTC")).is_err());
        assert!(check_quiet_hours(&quiet("7:00", "08:00", "UTC")).is_err());
        assert!(check_quiet_hours(&quiet("22:00", "07:00", "Mars/Olympus")).is_err());
    }
}
