//! `[sessions]`: lifetimes of the tokens sessions hand out.

use serde::Deserialize;

/// How long session tokens live, and how fresh a node's view of a session must be.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Lifetime of a session's access token (a JWT), in seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds: a session not refreshed within
    /// it ends (each refresh starts it again).
    pub refresh_ttl_secs: u64,
    /// A WebSocket session gets `token_expiring` this many seconds before its
    /// access token expires (at most half the token's lifetime before).
    pub expiry_notice_secs: u64,
    /// How long a node trusts what it read of a session (live or revoked)
    /// before reading it again, in ms. A revocation reaches every node at once
    /// over the cluster; this bounds how long a node that missed it goes on
    /// accepting the session's access tokens.
    pub check_ms: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            expiry_notice_secs: 60,
            check_ms: 5_000,
        }
    }
}

/// The longest lifetime either token may be configured with: a year.
const MAX_TTL_SECS: u64 = 366 * 24 * 3600;

impl SessionsConfig {
    /// Checks what types alone cannot; on error, the key and why.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=MAX_TTL_SECS).contains(&self.access_ttl_secs) {
            return Err(("sessions.access_ttl_secs", "must be from 1 to 31622400"));
        }
        if !(1..=MAX_TTL_SECS).contains(&self.refresh_ttl_secs) {
            return Err(("sessions.refresh_ttl_secs", "must be from 1 to 31622400"));
        }
        if self.refresh_ttl_secs < self.access_ttl_secs {
            return Err(("sessions.refresh_ttl_secs", "must be at least sessions.access_ttl_secs"));
        }
        if self.expiry_notice_secs > MAX_TTL_SECS {
            return Err(("sessions.expiry_notice_secs", "must be at most 31622400"));
        }
        if self.check_ms > 3_600_000 {
            return Err(("sessions.check_ms", "must be at most 3600000"));
        }
        Ok(())
    }

    /// The refresh token's lifetime in ms.
    pub fn refresh_ttl_ms(&self) -> i64 {
        i64::try_from(self.refresh_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// How long before an access token of `ttl_secs` expires its session is told.
    pub fn notice_secs(&self, ttl_secs: u64) -> u64 {
        self.expiry_notice_secs.min(ttl_secs / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_values_name_their_key() {
        assert!(SessionsConfig::default().check().is_ok());
        let zero = SessionsConfig { access_ttl_secs: 0, ..SessionsConfig::default() };
        assert_eq!(zero.check().unwrap_err().0, "sessions.access_ttl_secs");
        let short = SessionsConfig { refresh_ttl_secs: 10, access_ttl_secs: 20, ..SessionsConfig::default() };
        assert_eq!(short.check().unwrap_err().0, "sessions.refresh_ttl_secs");
        assert_eq!(SessionsConfig::default().notice_secs(4), 2);
        assert_eq!(SessionsConfig::default().notice_secs(900), 60);
    }
}
