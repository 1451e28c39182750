//! Sessions: refresh tokens, their rotation, and revocation.
//!
//! A session is created by the application's backend; it hands out pairs (an
//! access JWT with `sid`/`gen`, an opaque refresh token stored only as its
//! hash). How a presented refresh token is judged is `auth::session::judge`;
//! this module applies the verdict against the store (conditional writes on
//! the session's `version`, so two refreshes racing on one token cannot both
//! rotate), and keeps a node's short-lived view of which sessions are live so
//! that checking an access token costs no store read on the hot path.
//!
//! Every revocation goes through [`ChatService::end_session`]: it deletes the
//! session, forgets it on this node, and has every node close its sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::session::{Verdict, judge};
use crate::auth::{AuthSession, AuthSessionId, RefreshToken, SessionClaim, TokenError};
use crate::ids::{AppId, AppToken, Timestamp, UserId};

use super::{ChatError, ChatService};

/// A node forgets what it read of more sessions than this at once (then reads again).
const MAX_CACHED: usize = 100_000;
/// A connect records `last_seen_at` only when the last record is older than this.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// What a new session records of its user's client (the backend passes it on).
#[derive(Clone, Debug, Default)]
pub struct NewSession {
    /// The device, as the application names it.
    pub device: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// Where a request with a session's token came from.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    /// The client's address, if known.
    pub ip: Option<String>,
    /// The client's `User-Agent`, if sent.
    pub user_agent: Option<String>,
}

/// A pair handed out by a session.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The access token (an HS256 JWT with `sid` and `gen`).
    pub access_token: String,
    /// Its lifetime, in seconds.
    pub expires_in: u64,
    /// When it expires.
    pub expires_at: Timestamp,
    /// The refresh token, shown once.
    pub refresh_token: RefreshToken,
    /// The session.
    pub session: AuthSessionId,
}

/// A session as listed.
#[derive(Clone, Debug)]
pub struct SessionView {
    /// The record.
    pub session: AuthSession,
    /// A WebSocket opened with one of its tokens is open on some node.
    pub online: bool,
}

/// Why a session ends: the one place a revocation is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The application's backend revoked it (one session, or all of a user's).
    Backend,
    /// A refresh token was used again after its session moved on.
    Reuse,
}

impl Revocation {
    fn as_str(self) -> &'static str {
        match self {
            Revocation::Backend => "backend",
            Revocation::Reuse => "refresh_token_reuse",
        }
    }
}

/// What a node last read of a session.
#[derive(Clone, Copy, Debug)]
struct Seen {
    at: Instant,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Revoked, or never existed.
    Gone,
    /// Live: its newest pair, whether that pair was used, and when it was last seen.
    Live { generation: u64, confirmed: bool, last_seen: Timestamp },
}

/// This node's view of sessions, each trusted for `sessions.check_ms`.
#[derive(Clone, Default)]
pub(super) struct SessionCache(Arc<Mutex<HashMap<AuthSessionId, Seen>>>);

impl SessionCache {
    fn get(&self, id: &AuthSessionId, fresh_for: Duration) -> Option<State> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).filter(|seen| seen.at.elapsed() < fresh_for).map(|seen| seen.state)
    }

    fn put(&self, id: &AuthSessionId, state: State) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_CACHED && !map.contains_key(id) {
            map.clear();
        }
        map.insert(id.clone(), Seen { at: Instant::now(), state });
    }

    fn of(session: &AuthSession) -> State {
        State::Live {
            generation: session.generation,
            confirmed: session.confirmed,
            last_seen: session.last_seen_at,
        }
    }
}

impl ChatService {
    fn session_ttl_ms(&self) -> i64 {
        self.sessions.refresh_ttl_ms()
    }

    /// Mints the access token of `session`'s newest pair.
    async fn issue(&self, session: &AuthSession, refresh: RefreshToken) -> Result<Issued, ChatError> {
        let app = self.application_by_id(&session.app).await?.ok_or(ChatError::InvalidRefreshToken)?;
        let claim = SessionClaim { id: session.id.clone(), generation: session.generation };
        let ttl = self.sessions.access_ttl_secs;
        let (access_token, expires_at) =
            crate::auth::mint_for(&app.secret, &app.id, &session.user, Some(&claim), Timestamp::now(), ttl)?;
        Ok(Issued {
            access_token,
            expires_in: ttl,
            expires_at,
            refresh_token: refresh,
            session: session.id.clone(),
        })
    }

    /// Creates a session for `user` and hands out its first pair.
    pub async fn create_session(
        &self,
        token: &AppToken,
        user: &UserId,
        new: NewSession,
    ) -> Result<Issued, ChatError> {
        let app = self.application(token).await?;
        let id = AuthSessionId::generate();
        let refresh = RefreshToken::generate(&id);
        let now = Timestamp::now();
        let session = AuthSession {
            id: id.clone(),
            app: app.id.clone(),
            user: user.clone(),
            device: new.device,
            ip: new.ip,
            user_agent: new.user_agent,
            created_at: now,
            last_seen_at: now,
            expires_at: Timestamp(now.millis().saturating_add(self.session_ttl_ms())),
            generation: 1,
            refresh_hash: refresh.hash(),
            rotated: Vec::new(),
            confirmed: false,
            version: 1,
        };
        self.store.insert_auth_session(&session).await?;
        self.session_cache.put(&id, SessionCache::of(&session));
        tracing::info!(app = %app.id, session = %id, "session created");
        self.issue(&session, refresh).await
    }

    /// Trades a refresh token for a new pair (see the module doc).
    pub async fn refresh_session(
        &self,
        presented: &RefreshToken,
        client: ClientInfo,
    ) -> Result<Issued, ChatError> {
        let id = presented.session().ok_or(ChatError::InvalidRefreshToken)?;
        let hash = presented.hash();
        // A conditional write lost to a touch or a confirmation is tried again
        // on what it left; lost to a rotation, the token is superseded.
        for _ in 0..4 {
            let session = self.store.auth_session(&id).await?.ok_or(ChatError::InvalidRefreshToken)?;
            let now = Timestamp::now();
            match judge(&session, &hash, now) {
                Verdict::Current => {
                    let next_token = RefreshToken::generate(&id);
                    let mut next = session.rotated_to(&next_token, now, self.session_ttl_ms());
                    next.ip = client.ip.clone().or(next.ip);
                    next.user_agent = client.user_agent.clone().or(next.user_agent);
                    if self.store.replace_auth_session(&next, session.version).await? {
                        self.session_cache.put(&id, SessionCache::of(&next));
                        return self.issue(&next, next_token).await;
                    }
                }
                Verdict::Superseded | Verdict::Unknown => return Err(ChatError::InvalidRefreshToken),
                Verdict::Reused => {
                    tracing::warn!(app = %session.app, session = %id, "a rotated refresh token was used again");
                    self.end_session(&session.app, &session.user, &id, Revocation::Reuse).await?;
                    return Err(ChatError::SessionRevoked);
                }
            }
        }
        Err(ChatError::InvalidRefreshToken)
    }

    /// Checks the session of a verified access token: live (read at most every
    /// `sessions.check_ms` per node), of this user. The first use of a pair's
    /// access token marks the pair used (its predecessor's refresh token is reuse from then on).
    pub(super) async fn check_session(
        &self,
        app: &AppId,
        user: &UserId,
        claim: &SessionClaim,
    ) -> Result<(), ChatError> {
        let fresh_for = Duration::from_millis(self.sessions.check_ms);
        // A token newer than what this node saw: the session was refreshed on another node.
        let cached = self.session_cache.get(&claim.id, fresh_for).filter(
            |state| !matches!(state, State::Live { generation, .. } if *generation < claim.generation),
        );
        let state = match cached {
            Some(state) => state,
            None => {
                let read = self.store.auth_session(&claim.id).await?;
                let state = match &read {
                    Some(s) if s.app == *app && s.user == *user => SessionCache::of(s),
                    _ => State::Gone,
                };
                self.session_cache.put(&claim.id, state);
                state
            }
        };
        match state {
            State::Gone => Err(TokenError::SessionRevoked.into()),
            State::Live { generation, confirmed: false, .. } if generation == claim.generation => {
                self.confirm(&claim.id, generation, None).await;
                Ok(())
            }
            State::Live { .. } => Ok(()),
        }
    }

    /// Marks pair `generation` of a session used and, with `client`, records
    /// where it was seen; best effort (a lost race leaves it to the next use).
    async fn confirm(&self, id: &AuthSessionId, generation: u64, client: Option<&ClientInfo>) {
        let result = async {
            let Some(session) = self.store.auth_session(id).await? else { return Ok(()) };
            if session.generation != generation || (session.confirmed && client.is_none()) {
                return Ok(());
            }
            let mut next = AuthSession { confirmed: true, version: session.version + 1, ..session.clone() };
            if let Some(client) = client {
                next.last_seen_at = Timestamp::now();
                next.ip = client.ip.clone().or(next.ip);
                next.user_agent = client.user_agent.clone().or(next.user_agent);
            }
            if self.store.replace_auth_session(&next, session.version).await? {
                self.session_cache.put(id, SessionCache::of(&next));
            }
            Ok::<(), ChatError>(())
        };
        if let Err(e) = result.await {
            tracing::warn!(session = %id, error = %e, "cannot record a session's use");
        }
    }

    /// A WebSocket opened with a token of session `claim`: records where from
    /// (at most once a minute per session), best effort.
    pub async fn touch_session(&self, claim: &SessionClaim, client: &ClientInfo) {
        let fresh_for = Duration::from_millis(self.sessions.check_ms);
        let stale = match self.session_cache.get(&claim.id, fresh_for) {
            Some(State::Live { last_seen, .. }) => {
                Timestamp::now().millis().saturating_sub(last_seen.millis()) > TOUCH_EVERY.as_millis() as i64
            }
            Some(State::Gone) => false,
            None => true,
        };
        if stale {
            let generation = match self.session_cache.get(&claim.id, Duration::MAX) {
                Some(State::Live { generation, .. }) => generation,
                _ => claim.generation,
            };
            self.confirm(&claim.id, generation, Some(client)).await;
        }
    }

    /// A user's sessions, by id.
    pub async fn user_sessions(
        &self,
        token: &AppToken,
        user: &UserId,
    ) -> Result<Vec<SessionView>, ChatError> {
        let app = self.application(token).await?;
        let sessions = self.store.auth_sessions(&app.id, user).await?;
        let ids: Vec<AuthSessionId> = sessions.iter().map(|s| s.id.clone()).collect();
        let online = self.fabric.auth_sessions_online(&app.id, user, &ids).await;
        let views = sessions
            .into_iter()
            .zip(online.into_iter().chain(std::iter::repeat(false)))
            .map(|(session, online)| SessionView { session, online })
            .collect();
        Ok(views)
    }

    /// Revokes one session of a user: `SessionNotFound` when there is none.
    pub async fn revoke_session(
        &self,
        token: &AppToken,
        user: &UserId,
        id: &AuthSessionId,
    ) -> Result<(), ChatError> {
        let app = self.application(token).await?;
        match self.store.auth_session(id).await? {
            Some(s) if s.app == app.id && s.user == *user => {
                self.end_session(&app.id, user, id, Revocation::Backend).await?;
                Ok(())
            }
            _ => Err(ChatError::SessionNotFound),
        }
    }

    /// Revokes every session of a user; returns how many there were.
    pub async fn revoke_user_sessions(&self, token: &AppToken, user: &UserId) -> Result<usize, ChatError> {
        let app = self.application(token).await?;
        let sessions = self.store.auth_sessions(&app.id, user).await?;
        for session in &sessions {
            self.end_session(&app.id, user, &session.id, Revocation::Backend).await?;
        }
        Ok(sessions.len())
    }

    /// Ends a session: deleted from the store (its tokens are refused from
    /// now on), forgotten here, and its sockets closed on every node (4001).
    /// The one place a revocation happens, so the one place to record it.
    async fn end_session(
        &self,
        app: &AppId,
        user: &UserId,
        id: &AuthSessionId,
        why: Revocation,
    ) -> Result<bool, ChatError> {
        let existed = self.store.delete_auth_session(app, user, id).await?;
        self.forget_auth_session(id);
        self.fabric.close_auth_session(app, user, id).await;
        tracing::info!(app = %app, session = %id, reason = why.as_str(), "session revoked");
        Ok(existed)
    }

    /// Forgets a session on this node (it was revoked here or on another node):
    /// its access tokens are refused here from now on.
    pub fn forget_auth_session(&self, id: &AuthSessionId) {
        self.session_cache.put(id, State::Gone);
    }
}
