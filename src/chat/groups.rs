//! Groups: a chat's info (name, description, metadata), its members' roles,
//! and who may change what.
//!
//! The backend (REST) acts with an owner's power; a user (WebSocket) needs
//! the role each change names, and every refusal says which one. Changes to
//! one chat's members and roles run one at a time across the cluster (a short
//! lock per chat), so two owners leaving at once cannot both be "not the last".

use std::collections::BTreeSet;

use super::{ALL, Author, ChatError, ChatService, ChatView};
use crate::delivery::{Audience, Event, SessionId};
use crate::ids::{AppId, AppToken, ChatNumber, Timestamp, UserId};
use crate::model::{
    Chat, ChatKind, MAX_CHAT_NAME, MAX_DESCRIPTION, MAX_METADATA_BYTES, MAX_RECIPIENTS, Member, Metadata,
    Role, UserGroups,
};

/// How long the cluster-wide lock on one chat's members lasts, in ms.
const GROUP_LOCK_MS: u64 = 5_000;
/// How often a change waits 20 ms for another node's change of the same chat.
const GROUP_LOCK_TRIES: usize = 150;

/// Refusals: each names the permission that is missing.
const ADD_NEEDS: &str = "adding members needs the admin or owner role";
const REMOVE_NEEDS: &str = "removing members needs the admin or owner role";
const REMOVE_OWNER_NEEDS: &str = "removing an owner needs the owner role";
const REMOVE_ADMIN_NEEDS: &str = "removing an admin needs the owner role";
const EDIT_NEEDS: &str = "editing the chat needs the admin or owner role";
const ADMINS_NEED: &str = "making or unmaking admins needs the owner role";
const OWNERS_NEED: &str = "making or unmaking owners needs the owner role";
const SUCCESSOR_NEEDS: &str = "naming a successor needs the owner role";
const LAST_OWNER_LEAVES: &str =
    "the last owner cannot leave without naming a `successor` (a member who becomes owner)";
const LAST_OWNER_STAYS: &str =
    "the last owner cannot be demoted or removed while others remain; make another member owner first";
/// A user deleting someone else's message (see `changes.rs`).
pub(super) const DELETE_OTHERS_NEEDS: &str =
    "deleting another member's message needs the admin or owner role";
const DIRECT: &str = "a direct chat takes no members, no roles and no leaving";

/// A chat the backend creates.
#[derive(Clone, Debug, Default)]
pub struct NewChat {
    /// Its display name.
    pub name: Option<String>,
    /// What it is about.
    pub description: Option<String>,
    /// The application's own data.
    pub metadata: Metadata,
    /// The user who creates it: its first member, as owner.
    pub created_by: Option<UserId>,
}

/// How an update changes `metadata`.
#[derive(Clone, Debug, PartialEq)]
pub enum MetadataChange {
    /// Removes every key.
    Clear,
    /// Sets each key given; a key given as null is removed (JSON merge, one level).
    Merge(Metadata),
}

/// What an update of a chat changes (`None`: leave as is; `Some(None)`: clear).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatChanges {
    /// A new name, or none.
    pub name: Option<Option<String>>,
    /// A new description, or none.
    pub description: Option<Option<String>>,
    /// A change of the metadata.
    pub metadata: Option<MetadataChange>,
}

impl ChatChanges {
    /// Whether the update changes nothing at all (refused: give a field).
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.description.is_none() && self.metadata.is_none()
    }
}

/// Checks a name: at most [`MAX_CHAT_NAME`] characters.
pub fn check_name(name: &str) -> Result<(), ChatError> {
    if name.chars().count() > MAX_CHAT_NAME {
        return Err(ChatError::Invalid("`name` is longer than 200 characters"));
    }
    Ok(())
}

/// Checks a description: at most [`MAX_DESCRIPTION`] characters.
pub fn check_description(description: &str) -> Result<(), ChatError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ChatError::Invalid("`description` is longer than 2000 characters"));
    }
    Ok(())
}

/// Checks metadata: at most [`MAX_METADATA_BYTES`] serialized.
pub fn check_metadata(metadata: &Metadata) -> Result<(), ChatError> {
    if serde_json::to_vec(metadata).map_or(usize::MAX, |b| b.len()) > MAX_METADATA_BYTES {
        return Err(ChatError::Invalid("`metadata` is larger than 4096 bytes (serialized)"));
    }
    Ok(())
}

/// An empty or blank text reads as none.
fn text(value: Option<String>) -> Option<String> {
    value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl ChatService {
    /// Creates the next chat of an application (a group); its creator, if
    /// named, is its first member and owner.
    pub async fn create_chat(&self, token: &AppToken, new: NewChat) -> Result<ChatView, ChatError> {
        let NewChat { name, description, metadata, created_by } = new;
        let (name, description) = (text(name), text(description));
        name.as_deref().map(check_name).transpose()?;
        description.as_deref().map(check_description).transpose()?;
        check_metadata(&metadata)?;
        let app = self.application(token).await?;
        let number = self.numbers.next_chat(&app.id).await?;
        self.numbers.init_chat(&app.id, number).await?;
        let mut chat = Chat::new(app.id.clone(), number, ChatKind::Group, Timestamp::now());
        chat.name = name;
        chat.description = description;
        chat.metadata = metadata;
        chat.created_by = created_by;
        self.store.insert_chat(&chat).await?;
        self.notify_chat(&chat, true);
        if let Some(owner) = &chat.created_by {
            self.store.add_member(&app.id, number, owner, Role::Owner, chat.created_at).await?;
            self.members.invalidate(&app.id, number);
            self.fabric.members_changed(&app.id, number, owner, true).await;
            self.notify_member(&app.id, number, owner, Some(Role::Owner));
        }
        self.known.insert(&app.id, number);
        Ok(ChatView { chat, messages_count: 0 })
    }

    /// Changes a chat's name, description or metadata: a user needs the
    /// admin or owner role in a group (either member of a direct chat may).
    /// Every member's sessions but `from` get `chat_updated`.
    pub async fn update_chat(
        &self,
        app: &AppId,
        author: &Author,
        chat: ChatNumber,
        changes: ChatChanges,
        from: Option<SessionId>,
    ) -> Result<Chat, ChatError> {
        if changes.is_empty() {
            return Err(ChatError::Invalid("give `name`, `description` or `metadata`"));
        }
        let ChatChanges { name, description, metadata } = changes;
        let (name, description) = (name.map(text), description.map(text));
        if let Some(Some(name)) = &name {
            check_name(name)?;
        }
        if let Some(Some(description)) = &description {
            check_description(description)?;
        }
        let updated = self
            .exclusive(app, chat, async {
                let (mut current, role) = self.acting(app, author, chat).await?;
                if current.kind == ChatKind::Group && !role.manages() {
                    return Err(ChatError::Forbidden(EDIT_NEEDS));
                }
                if let Some(name) = name {
                    current.name = name;
                }
                if let Some(description) = description {
                    current.description = description;
                }
                match metadata {
                    None => {}
                    Some(MetadataChange::Clear) => current.metadata.clear(),
                    Some(MetadataChange::Merge(patch)) => {
                        for (key, value) in patch {
                            if value.is_null() {
                                current.metadata.remove(&key);
                            } else {
                                current.metadata.insert(key, value);
                            }
                        }
                    }
                }
                check_metadata(&current.metadata)?;
                current.updated_at = Timestamp::now().max(current.created_at);
                self.store.update_chat(&current).await?;
                Ok(current)
            })
            .await?;
        self.notify_chat(&updated, false);
        self.announce(app, chat, Event::ChatUpdated(updated.clone()), from).await;
        Ok(updated)
    }

    /// Adds users to a group as `role` (a user may add plain members only,
    /// with the admin or owner role, and not at all when the application's
    /// `user_groups` is `backend_only`); returns those who were not members
    /// before. Every member's sessions but `from` get `member_joined` for each.
    pub async fn add_members(
        &self,
        app: &AppId,
        author: &Author,
        chat: ChatNumber,
        users: &[UserId],
        role: Role,
        from: Option<SessionId>,
    ) -> Result<Vec<UserId>, ChatError> {
        let users: BTreeSet<&UserId> = users.iter().collect();
        if users.is_empty() || users.len() > MAX_RECIPIENTS {
            return Err(ChatError::Invalid("`users` names 1 to 100 users"));
        }
        if let Author::User(_) = author {
            // Being added needs no consent: an application may keep it to its backend.
            let current = self.application_by_id(app).await?.ok_or(ChatError::ApplicationNotFound)?;
            if current.user_groups == UserGroups::BackendOnly {
                return Err(ChatError::UserGroupsClosed);
            }
        }
        let added = self
            .exclusive(app, chat, async {
                let (current, acting) = self.acting(app, author, chat).await?;
                if current.kind == ChatKind::Direct {
                    return Err(ChatError::Invalid(DIRECT));
                }
                if !acting.manages() {
                    return Err(ChatError::Forbidden(ADD_NEEDS));
                }
                if role > acting {
                    return Err(ChatError::Forbidden(if role == Role::Owner {
                        OWNERS_NEED
                    } else {
                        ADMINS_NEED
                    }));
                }
                let now = Timestamp::now();
                let mut added = Vec::new();
                for user in users {
                    if self.store.member(app, chat, user).await?.is_some() {
                        continue;
                    }
                    self.store.add_member(app, chat, user, role, now).await?;
                    added.push(user.clone());
                }
                Ok(added)
            })
            .await?;
        self.members.invalidate(app, chat);
        for user in &added {
            self.fabric.members_changed(app, chat, user, true).await;
        }
        for user in &added {
            self.notify_member(app, chat, user, Some(role));
            let event = Event::MemberJoined { chat, user: user.clone(), role };
            self.announce(app, chat, event, from).await;
        }
        Ok(added)
    }

    /// Sets a member's role (a user needs the owner role); the last owner
    /// cannot be demoted while others remain. Every member's sessions but
    /// `from` get `role_changed` when it changed.
    pub async fn set_role(
        &self,
        app: &AppId,
        author: &Author,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
        from: Option<SessionId>,
    ) -> Result<Member, ChatError> {
        let (member, changed) = self
            .exclusive(app, chat, async {
                let (current, acting) = self.acting(app, author, chat).await?;
                if current.kind == ChatKind::Direct {
                    return Err(ChatError::Invalid(DIRECT));
                }
                let target = self.store.member(app, chat, user).await?;
                if acting != Role::Owner {
                    let owners_involved =
                        role == Role::Owner || target.as_ref().is_some_and(|t| t.role == Role::Owner);
                    return Err(ChatError::Forbidden(if owners_involved {
                        OWNERS_NEED
                    } else {
                        ADMINS_NEED
                    }));
                }
                let target = target.ok_or(ChatError::MemberNotFound)?;
                if target.role == role {
                    return Ok((target, false));
                }
                if target.role == Role::Owner && self.owners_and_others(app, chat, user).await?.0 == 0 {
                    return Err(ChatError::Forbidden(LAST_OWNER_STAYS));
                }
                if !self.store.set_role(app, chat, user, role).await? {
                    return Err(ChatError::MemberNotFound);
                }
                Ok((Member { role, ..target }, true))
            })
            .await?;
        if changed {
            let event = Event::RoleChanged { chat, user: user.clone(), role };
            self.announce(app, chat, event, from).await;
        }
        Ok(member)
    }

    /// Removes a member from a group (a user needs the admin role, the owner
    /// role to remove an admin or an owner; to remove oneself, `leave`).
    /// The member's sessions hear `member_left` about themselves, then
    /// nothing more of the chat, on every node.
    pub async fn remove_from_chat(
        &self,
        app: &AppId,
        author: &Author,
        chat: ChatNumber,
        user: &UserId,
        from: Option<SessionId>,
    ) -> Result<(), ChatError> {
        self.exclusive(app, chat, async {
            let (current, acting) = self.acting(app, author, chat).await?;
            if current.kind == ChatKind::Direct {
                return Err(ChatError::Invalid(DIRECT));
            }
            if matches!(author, Author::User(me) if me == user) {
                return Err(ChatError::Invalid("to remove yourself from a chat, send `leave`"));
            }
            if !acting.manages() {
                return Err(ChatError::Forbidden(REMOVE_NEEDS));
            }
            let target = self.store.member(app, chat, user).await?.ok_or(ChatError::MemberNotFound)?;
            match target.role {
                Role::Owner if acting != Role::Owner => return Err(ChatError::Forbidden(REMOVE_OWNER_NEEDS)),
                Role::Admin if acting != Role::Owner => return Err(ChatError::Forbidden(REMOVE_ADMIN_NEEDS)),
                _ => {}
            }
            if target.role == Role::Owner {
                let (owners, others) = self.owners_and_others(app, chat, user).await?;
                if owners == 0 && others > 0 {
                    return Err(ChatError::Forbidden(LAST_OWNER_STAYS));
                }
            }
            if !self.store.remove_member(app, chat, user).await? {
                return Err(ChatError::MemberNotFound);
            }
            Ok(())
        })
        .await?;
        self.departed(app, chat, user, from).await;
        Ok(())
    }

    /// `user` leaves a group. The last owner names a `successor` (a member,
    /// who becomes owner) unless nobody else is left.
    pub async fn leave(
        &self,
        app: &AppId,
        user: &UserId,
        chat: ChatNumber,
        successor: Option<&UserId>,
        from: Option<SessionId>,
    ) -> Result<(), ChatError> {
        let promoted = self
            .exclusive(app, chat, async {
                let (current, role) = self.acting(app, &Author::User(user.clone()), chat).await?;
                if current.kind == ChatKind::Direct {
                    return Err(ChatError::Invalid(DIRECT));
                }
                let mut promoted = None;
                match successor {
                    Some(successor) => {
                        if role != Role::Owner {
                            return Err(ChatError::Forbidden(SUCCESSOR_NEEDS));
                        }
                        if successor == user {
                            return Err(ChatError::Invalid("`successor` must be another member"));
                        }
                        let heir = self
                            .store
                            .member(app, chat, successor)
                            .await?
                            .ok_or(ChatError::MemberNotFound)?;
                        if heir.role != Role::Owner {
                            if !self.store.set_role(app, chat, successor, Role::Owner).await? {
                                return Err(ChatError::MemberNotFound);
                            }
                            promoted = Some(successor.clone());
                        }
                    }
                    None if role == Role::Owner => {
                        let (owners, others) = self.owners_and_others(app, chat, user).await?;
                        if owners == 0 && others > 0 {
                            return Err(ChatError::Forbidden(LAST_OWNER_LEAVES));
                        }
                    }
                    None => {}
                }
                if !self.store.remove_member(app, chat, user).await? {
                    return Err(ChatError::NotAMember);
                }
                Ok(promoted)
            })
            .await?;
        if let Some(heir) = promoted {
            let event = Event::RoleChanged { chat, user: heir, role: Role::Owner };
            self.announce(app, chat, event, from).await;
        }
        self.departed(app, chat, user, from).await;
        Ok(())
    }

    /// Whether `user` may delete another member's message in `chat`.
    pub(super) async fn manages(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<bool, ChatError> {
        Ok(self.store.member(app, chat, user).await?.is_some_and(|m| m.role.manages()))
    }

    /// The chat and the acting user's role in it (the backend acts as an owner).
    async fn acting(
        &self,
        app: &AppId,
        author: &Author,
        chat: ChatNumber,
    ) -> Result<(Chat, Role), ChatError> {
        let current = self.store.chat(app, chat).await?.ok_or(ChatError::ChatNotFound)?;
        let role = match author {
            Author::Backend(_) => Role::Owner,
            Author::User(user) => {
                self.store.member(app, chat, user).await?.ok_or(ChatError::NotAMember)?.role
            }
        };
        Ok((current, role))
    }

    /// The owners of `chat` besides `user`, and its other members.
    async fn owners_and_others(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<(usize, usize), ChatError> {
        let members = self.store.members(app, chat, ALL).await?;
        let others: Vec<&Member> = members.iter().filter(|m| &m.user != user).collect();
        Ok((others.iter().filter(|m| m.role == Role::Owner).count(), others.len()))
    }

    /// After `user` left `chat` (stored): every node forgets the chat's
    /// members before this returns (so the next message reaches `user`
    /// nowhere), then the members and `user`'s own sessions get `member_left`.
    async fn departed(&self, app: &AppId, chat: ChatNumber, user: &UserId, from: Option<SessionId>) {
        self.members.invalidate(app, chat);
        self.fabric.members_changed(app, chat, user, false).await;
        self.notify_member(app, chat, user, None);
        let event = Event::MemberLeft { chat, user: user.clone() };
        match self.member_list(app, chat).await {
            Ok(members) => {
                let audience = Audience::Chat { chat, members, except_user: Some(user.clone()) };
                self.fabric.deliver(app, &event, &audience, from).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read members to announce a departure"),
        }
        self.fabric.deliver(app, &event, &Audience::Users(vec![user.clone()]), from).await;
    }

    /// Delivers a group event to every member's sessions but `from`.
    async fn announce(&self, app: &AppId, chat: ChatNumber, event: Event, from: Option<SessionId>) {
        match self.member_list(app, chat).await {
            Ok(members) => {
                let audience = Audience::Chat { chat, members, except_user: None };
                self.fabric.deliver(app, &event, &audience, from).await;
            }
            // Stored: members see it in the chat's info and member list.
            Err(e) => tracing::warn!(error = %e, "cannot read members to announce a group change"),
        }
    }

    /// Runs `change` while no other change of `chat`'s members or info runs:
    /// on this node (one at a time) and across the cluster (a short Redis lock;
    /// should its holder die, the lock expires and the change goes ahead).
    async fn exclusive<T>(
        &self,
        app: &AppId,
        chat: ChatNumber,
        change: impl Future<Output = Result<T, ChatError>>,
    ) -> Result<T, ChatError> {
        let _local = self.groups.lock().await;
        let lock = format!("{{{app}}}:group:{}", chat.get());
        let mut locked = false;
        for _ in 0..GROUP_LOCK_TRIES {
            if self.locks.try_lock(&lock, GROUP_LOCK_MS).await? {
                locked = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let out = change.await;
        if locked {
            let _ = self.locks.unlock(&lock).await;
        }
        out
    }
}
