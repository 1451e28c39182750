//! The cluster directory in Redis: which nodes hold sessions of each user, and
//! which nodes have online members of each chat.
//!
//! A node registers a user when the user's first session on it opens, and the
//! user's chats whose first online member on this node that user is; it
//! unregisters them symmetrically, from local reference counts. A message to a
//! chat then costs one `SMEMBERS` of the chat's node set, however many members
//! it has. Every key a node adds to is listed in the node's index, so the
//! survivors can purge a dead node's entries; a node whose index vanished
//! (Redis restarted empty, or it was wrongly purged) registers everything again.
//!
//! Keys (the application id is a Redis Cluster hash tag):
//! - `prefix:{app}:chat:N:nodes` — nodes with online members of chat N;
//! - `prefix:{app}:user:U:nodes` — nodes with sessions of user U;
//! - `prefix:node:ID:keys` — the keys node ID added itself to (its own slot on
//!   a Redis Cluster, so writes that touch it are split per slot).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::redis_conn::{RedisConn, SlotPipes, hash_tag};

use crate::ids::{AppId, ChatNumber, UserId};

/// Why the directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable")]
pub struct DirectoryError(#[source] redis::RedisError);

/// A user of an application: whose a user key is.
type Owner = (AppId, UserId);

/// What [`Directory::purge`] removed.
#[derive(Debug, Default)]
pub struct Purged {
    /// Keys the dead node had added itself to.
    pub keys: usize,
    /// Users the dead node held who are on no node now.
    pub orphans: Vec<(AppId, UserId)>,
}

/// A user's sessions on this node and the chats registered for them.
struct LocalUser {
    sessions: usize,
    chats: BTreeSet<ChatNumber>,
}

/// This node's side of the directory: reference counts behind the Redis sets.
#[derive(Default)]
struct Local {
    users: HashMap<(AppId, UserId), LocalUser>,
    chats: HashMap<(AppId, ChatNumber), usize>,
    /// A write to Redis failed: Redis may lack entries the counts hold, so
    /// [`Directory::repair`] registers everything again.
    dirty: bool,
}

/// The directory; cheap to clone.
#[derive(Clone)]
pub struct Directory {
    conn: RedisConn,
    prefix: String,
    node: String,
    local: Arc<Mutex<Local>>,
}

/// Redis writes to make, computed under the local lock and sent after it.
#[derive(Default)]
struct Changes {
    add: Vec<String>,
    remove: Vec<String>,
}

impl Directory {
    /// The directory of node `node`, in Redis under `prefix`.
    pub fn new(conn: RedisConn, prefix: String, node: String) -> Self {
        Self { conn, prefix, node, local: Arc::default() }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn chat_key(&self, app: &AppId, chat: ChatNumber) -> String {
        format!("{}:{{{app}}}:chat:{chat}:nodes", self.prefix)
    }

    fn user_key(&self, app: &AppId, user: &UserId) -> String {
        format!("{}:{{{app}}}:user:{user}:nodes", self.prefix)
    }

    fn index_key(&self, node: &str) -> String {
        format!("{}:node:{node}:keys", self.prefix)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A session of `user` opened here; `chats` are the user's chats (used
    /// when this is the user's first session here). Returns whether it is.
    pub async fn session_opened(
        &self,
        app: &AppId,
        user: &UserId,
        chats: Vec<ChatNumber>,
    ) -> Result<bool, DirectoryError> {
        let changes = {
            let mut local = self.lock();
            let key = (app.clone(), user.clone());
            if let Some(entry) = local.users.get_mut(&key) {
                entry.sessions += 1;
                return Ok(false);
            }
            let chats: BTreeSet<ChatNumber> = chats.into_iter().collect();
            let mut changes = Changes::default();
            changes.add.push(self.user_key(app, user));
            for chat in &chats {
                let count = local.chats.entry((app.clone(), *chat)).or_default();
                *count += 1;
                if *count == 1 {
                    changes.add.push(self.chat_key(app, *chat));
                }
            }
            local.users.insert(key, LocalUser { sessions: 1, chats });
            changes
        };
        self.apply(changes).await?;
        Ok(true)
    }

    /// A session of `user` closed here. Returns whether it was the user's last on this node.
    pub async fn session_closed(&self, app: &AppId, user: &UserId) -> Result<bool, DirectoryError> {
        let changes = {
            let mut local = self.lock();
            let key = (app.clone(), user.clone());
            let Some(entry) = local.users.get_mut(&key) else {
                return Ok(false);
            };
            entry.sessions = entry.sessions.saturating_sub(1);
            if entry.sessions > 0 {
                return Ok(false);
            }
            let chats = local.users.remove(&key).map(|u| u.chats).unwrap_or_default();
            let mut changes = Changes::default();
            changes.remove.push(self.user_key(app, user));
            for chat in chats {
                if release(&mut local.chats, app, chat) {
                    changes.remove.push(self.chat_key(app, chat));
                }
            }
            changes
        };
        self.apply(changes).await?;
        Ok(true)
    }

    /// `user` joined `chat`: if the user has sessions here, this node now
    /// has an online member of the chat.
    pub async fn joined(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<(), DirectoryError> {
        let changes = {
            let mut local = self.lock();
            let Some(entry) = local.users.get_mut(&(app.clone(), user.clone())) else {
                return Ok(());
            };
            if !entry.chats.insert(chat) {
                return Ok(());
            }
            let count = local.chats.entry((app.clone(), chat)).or_default();
            *count += 1;
            let mut changes = Changes::default();
            if *count == 1 {
                changes.add.push(self.chat_key(app, chat));
            }
            changes
        };
        self.apply(changes).await
    }

    /// `user` left `chat`.
    pub async fn left(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<(), DirectoryError> {
        let changes = {
            let mut local = self.lock();
            let Some(entry) = local.users.get_mut(&(app.clone(), user.clone())) else {
                return Ok(());
            };
            if !entry.chats.remove(&chat) {
                return Ok(());
            }
            let mut changes = Changes::default();
            if release(&mut local.chats, app, chat) {
                changes.remove.push(self.chat_key(app, chat));
            }
            changes
        };
        self.apply(changes).await
    }

    /// Whether `user` has sessions on this node.
    pub fn is_local(&self, app: &AppId, user: &UserId) -> bool {
        self.lock().users.contains_key(&(app.clone(), user.clone()))
    }

    async fn apply(&self, changes: Changes) -> Result<(), DirectoryError> {
        if changes.add.is_empty() && changes.remove.is_empty() {
            return Ok(());
        }
        let mut pipes = SlotPipes::new(&self.conn);
        for key in &changes.add {
            pipes.of(key).sadd(key, &self.node).ignore();
        }
        if !changes.add.is_empty() {
            let index = self.index_key(&self.node);
            pipes.of(&index).sadd(&index, &changes.add).ignore();
        }
        for key in &changes.remove {
            pipes.of(key).srem(key, &self.node).ignore();
        }
        let result = pipes.run(&self.conn).await.map_err(DirectoryError);
        if result.is_err() {
            self.lock().dirty = true;
        }
        result
    }

    /// The nodes with online members of `chat` (this one included, if so).
    pub async fn chat_nodes(&self, app: &AppId, chat: ChatNumber) -> Result<Vec<String>, DirectoryError> {
        let mut conn = self.conn.clone();
        redis::cmd("SMEMBERS")
            .arg(self.chat_key(app, chat))
            .query_async(&mut conn)
            .await
            .map_err(DirectoryError)
    }

    /// The nodes with online members of `chat` or sessions of any of `users`,
    /// in one round trip (for small chats, whose node set a just-created chat
    /// may not have yet).
    pub async fn chat_or_user_nodes<'a>(
        &self,
        app: &AppId,
        chat: ChatNumber,
        users: impl Iterator<Item = &'a UserId>,
    ) -> Result<BTreeSet<String>, DirectoryError> {
        let mut pipe = redis::pipe();
        pipe.smembers(self.chat_key(app, chat));
        for user in users {
            pipe.smembers(self.user_key(app, user));
        }
        let mut conn = self.conn.clone();
        let sets: Vec<Vec<String>> = pipe.query_async(&mut conn).await.map_err(DirectoryError)?;
        Ok(sets.into_iter().flatten().collect())
    }

    /// The nodes with online members of any of `chats`: one `SUNION` (the
    /// chats' keys share their application's slot).
    pub async fn chats_nodes(
        &self,
        app: &AppId,
        chats: &[ChatNumber],
    ) -> Result<BTreeSet<String>, DirectoryError> {
        if chats.is_empty() {
            return Ok(BTreeSet::new());
        }
        let keys: Vec<String> = chats.iter().map(|chat| self.chat_key(app, *chat)).collect();
        let mut conn = self.conn.clone();
        redis::cmd("SUNION").arg(keys).query_async(&mut conn).await.map_err(DirectoryError)
    }

    /// The nodes with sessions of any of `users`, in one round trip.
    pub async fn user_nodes<'a>(
        &self,
        app: &AppId,
        users: impl Iterator<Item = &'a UserId>,
    ) -> Result<BTreeSet<String>, DirectoryError> {
        let mut pipe = redis::pipe();
        let mut any = false;
        for user in users {
            pipe.smembers(self.user_key(app, user));
            any = true;
        }
        if !any {
            return Ok(BTreeSet::new());
        }
        let mut conn = self.conn.clone();
        let sets: Vec<Vec<String>> = pipe.query_async(&mut conn).await.map_err(DirectoryError)?;
        Ok(sets.into_iter().flatten().collect())
    }

    /// How many nodes hold sessions of `user`.
    pub async fn user_node_count(&self, app: &AppId, user: &UserId) -> Result<usize, DirectoryError> {
        let mut conn = self.conn.clone();
        redis::cmd("SCARD").arg(self.user_key(app, user)).query_async(&mut conn).await.map_err(DirectoryError)
    }

    /// How many nodes hold sessions of each of `users` (one pipeline: an
    /// application's keys share a slot).
    pub async fn user_node_counts(
        &self,
        app: &AppId,
        users: &[UserId],
    ) -> Result<Vec<usize>, DirectoryError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for user in users {
            pipe.cmd("SCARD").arg(self.user_key(app, user));
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await.map_err(DirectoryError)
    }

    /// Removes every entry of a dead node (run by the survivors; idempotent).
    ///
    /// Returns how many keys the node had added itself to, and the users it
    /// held who are now on no node at all. Of survivors purging at once,
    /// only the one whose `SREM` took the node out of a user's set (Redis
    /// runs each alone) can find that user orphaned, so each orphan is
    /// reported once, for one offline announcement cluster-wide.
    pub async fn purge(&self, node: &str) -> Result<Purged, DirectoryError> {
        let index = self.index_key(node);
        let mut conn = self.conn.clone();
        let keys: Vec<String> =
            redis::cmd("SMEMBERS").arg(&index).query_async(&mut conn).await.map_err(DirectoryError)?;
        // Users' sets: `SREM` then `SCARD`, with replies, one pipeline per slot.
        let mut users: BTreeMap<String, Vec<(&str, Owner)>> = BTreeMap::new();
        let mut pipes = SlotPipes::new(&self.conn);
        for key in &keys {
            match self.parse_user_key(key) {
                Some(owner) => {
                    let group = if self.conn.is_cluster() { hash_tag(key).to_owned() } else { String::new() };
                    users.entry(group).or_default().push((key, owner));
                }
                None => {
                    pipes.of(key).srem(key, node).ignore();
                }
            }
        }
        let mut orphans = Vec::new();
        for group in users.into_values() {
            let mut pipe = redis::pipe();
            for (key, _) in &group {
                pipe.srem(*key, node).scard(*key);
            }
            let mut conn = self.conn.clone();
            let replies: Vec<i64> = pipe.query_async(&mut conn).await.map_err(DirectoryError)?;
            for ((_, owner), pair) in group.into_iter().zip(replies.chunks(2)) {
                if let [1, 0] = pair {
                    orphans.push(owner);
                }
            }
        }
        pipes.run(&self.conn).await.map_err(DirectoryError)?;
        // The index goes last: should the purge fail half-way, a survivor can run it again.
        redis::cmd("DEL").arg(&index).query_async::<()>(&mut conn).await.map_err(DirectoryError)?;
        Ok(Purged { keys: keys.len(), orphans })
    }

    /// The application and user of a user key ([`Directory::user_key`]), or
    /// `None` for any other key.
    fn parse_user_key(&self, key: &str) -> Option<Owner> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix(":{")?;
        let (app, rest) = rest.split_once("}:")?;
        let user = rest.strip_prefix("user:")?.strip_suffix(":nodes")?;
        Some((AppId::new(app), UserId::parse(user).ok()?))
    }

    /// Registers this node's entries again when its index is gone (Redis
    /// restarted empty, or the node was purged by mistake) or a write failed
    /// (a session opened while Redis timed out); returns whether it did.
    pub async fn repair(&self) -> Result<bool, DirectoryError> {
        let mut conn = self.conn.clone();
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.index_key(&self.node))
            .query_async(&mut conn)
            .await
            .map_err(DirectoryError)?;
        let (changes, dirty) = {
            let mut local = self.lock();
            let dirty = std::mem::take(&mut local.dirty);
            if (exists && !dirty) || local.users.is_empty() {
                return Ok(false);
            }
            let mut changes = Changes::default();
            for (app, user) in local.users.keys() {
                changes.add.push(self.user_key(app, user));
            }
            for (app, chat) in local.chats.keys() {
                changes.add.push(self.chat_key(app, *chat));
            }
            (changes, dirty)
        };
        tracing::warn!(
            keys = changes.add.len(),
            after_failed_write = dirty,
            "directory entries of this node may be missing; registering again"
        );
        self.apply(changes).await?;
        Ok(true)
    }
}

/// Drops one local online member of `chat`; true when it was the last.
fn release(chats: &mut HashMap<(AppId, ChatNumber), usize>, app: &AppId, chat: ChatNumber) -> bool {
    let key = (app.clone(), chat);
    match chats.get_mut(&key) {
        Some(count) if *count > 1 => {
            *count -= 1;
            false
        }
        Some(_) => {
            chats.remove(&key);
            true
        }
        None => false,
    }
}
