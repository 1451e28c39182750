//! Chats created by a `send` to `recipients`: the one direct chat of a pair,
//! or a new group of sender + recipients.

use std::collections::BTreeSet;

use crate::chat::{ChatError, ChatService};
use crate::ids::{AppId, ChatNumber, Timestamp, UserId};
use crate::model::{Chat, ChatKind, DirectPair, MAX_RECIPIENTS, Role, UserGroups};

/// How long the cluster-wide lock on creating a pair's direct chat lasts, in ms.
const DIRECT_LOCK_MS: u64 = 5_000;
/// How often a send waits 20 ms for another node to create the pair's chat.
const DIRECT_LOCK_TRIES: usize = 150;

impl ChatService {
    /// The chat a send to `recipients` goes to, created when needed.
    pub(super) async fn implicit_chat(
        &self,
        app: &AppId,
        sender: &UserId,
        recipients: &[UserId],
    ) -> Result<ChatNumber, ChatError> {
        let others: BTreeSet<&UserId> = recipients.iter().filter(|u| *u != sender).collect();
        if others.len() > MAX_RECIPIENTS {
            return Err(ChatError::Invalid("too many recipients (at most 100)"));
        }
        let mut others = others.into_iter();
        match (others.next(), others.next()) {
            (None, _) => Err(ChatError::Invalid("`recipients` must name someone besides the sender")),
            (Some(other), None) => {
                let pair = DirectPair::new(sender.clone(), other.clone())
                    .ok_or(ChatError::Invalid("`recipients` must name someone besides the sender"))?;
                self.direct_chat(app, &pair).await
            }
            (Some(_), Some(_)) => {
                // The policy as it is now (a session holds the application as
                // it was when it opened): fresh on this node, within
                // `cache.apps_ttl_ms` on the others.
                let current = self.application_by_id(app).await?.ok_or(ChatError::ApplicationNotFound)?;
                if current.user_groups == UserGroups::BackendOnly {
                    return Err(ChatError::UserGroupsClosed);
                }
                let mut members: Vec<&UserId> = recipients.iter().filter(|u| *u != sender).collect();
                members.push(sender);
                self.new_chat(app, ChatKind::Group, &members).await
            }
        }
    }

    /// The direct chat of `pair`: found, or created once however many sends race.
    async fn direct_chat(&self, app: &AppId, pair: &DirectPair) -> Result<ChatNumber, ChatError> {
        if let Some(chat) = self.directs.get(app, pair) {
            return Ok(chat);
        }
        let chat = match self.store.direct_chat(app, pair).await? {
            Some(chat) => {
                // The claim exists; its chat row and members may not if the
                // claiming node died half-way: completing them is idempotent.
                let [a, b] = pair.users();
                let whole = self.store.chat(app, chat).await?.is_some()
                    && self.store.is_member(app, chat, a).await?
                    && self.store.is_member(app, chat, b).await?;
                if !whole {
                    self.complete_chat(app, chat, ChatKind::Direct, &pair.users()).await?;
                }
                chat
            }
            None => {
                // One claim per pair on this node at a time, so local races
                // spend no chat number; the store's atomic claim stays the
                // judge should a lock expire (the loser's number is a gap).
                let _guard = self.directs.lock(app, pair).await;
                // Across nodes a short lock in Redis does the same; whoever
                // waits for it finds the winner's whole chat once it is released.
                let [low, high] = pair.users();
                let lock = format!("{{{app}}}:dm:{low}:{high}");
                let mut locked = false;
                for _ in 0..DIRECT_LOCK_TRIES {
                    if self.locks.try_lock(&lock, DIRECT_LOCK_MS).await? {
                        locked = true;
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                let created = self.create_direct(app, pair).await;
                if locked {
                    let _ = self.locks.unlock(&lock).await;
                }
                created?
            }
        };
        Ok(self.remember_direct(app, pair, chat))
    }

    fn remember_direct(&self, app: &AppId, pair: &DirectPair, chat: ChatNumber) -> ChatNumber {
        self.directs.put(app, pair, chat);
        chat
    }

    /// Draws a number and claims it for `pair` (the store's atomic claim decides a race).
    async fn create_direct(&self, app: &AppId, pair: &DirectPair) -> Result<ChatNumber, ChatError> {
        if let Some(chat) = self.store.direct_chat(app, pair).await? {
            return Ok(chat);
        }
        let number = self.numbers.next_chat(app).await?;
        self.numbers.init_chat(app, number).await?;
        let chat = self.store.claim_direct_chat(app, pair, number).await?;
        self.complete_chat(app, chat, ChatKind::Direct, &pair.users()).await?;
        Ok(chat)
    }

    /// Creates a chat with these members.
    async fn new_chat(
        &self,
        app: &AppId,
        kind: ChatKind,
        members: &[&UserId],
    ) -> Result<ChatNumber, ChatError> {
        let number = self.numbers.next_chat(app).await?;
        self.numbers.init_chat(app, number).await?;
        self.complete_chat(app, number, kind, members).await?;
        Ok(number)
    }

    /// Writes the chat row, then its members (idempotent upserts). A group's
    /// creator is the last of `members`: it is the chat's `created_by` and owner.
    async fn complete_chat(
        &self,
        app: &AppId,
        number: ChatNumber,
        kind: ChatKind,
        members: &[&UserId],
    ) -> Result<(), ChatError> {
        let now = Timestamp::now();
        let mut chat = Chat::new(app.clone(), number, kind, now);
        let creator = members.last().filter(|_| kind == ChatKind::Group).copied();
        let role_of = |user: &UserId| if Some(user) == creator { Role::Owner } else { Role::Member };
        chat.created_by = creator.cloned();
        self.store.insert_chat(&chat).await?;
        self.notify_chat(&chat, true);
        for user in members {
            self.store.add_member(app, number, user, role_of(user), now).await?;
        }
        self.members.invalidate(app, number);
        for user in members {
            self.fabric.members_changed(app, number, user, true).await;
            self.notify_member(app, number, user, Some(role_of(user)));
        }
        self.known.insert(app, number);
        Ok(())
    }
}
