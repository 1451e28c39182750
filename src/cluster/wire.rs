//! What nodes tell each other, as JSON in the transport's frames.
//!
//! A message to a chat travels once per node with online members; the
//! receiving node resolves the chat's members itself, so a frame never carries
//! a member list. Frames are small and self-describing; the transport frames
//! and batches them.

use serde::{Deserialize, Serialize};

use crate::cache::Compact;
use crate::delivery::{Audience, Event};
use crate::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Chat, ChatKind, Metadata, ReceiptKind, Role};

/// One node-to-node frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Wire {
    /// Deliver an event to this node's sessions of the audience.
    Event {
        /// The application.
        app: String,
        /// What happened (boxed: a message with its files is the largest frame by far).
        event: Box<WireEvent>,
        /// Who should see it.
        audience: WireAudience,
    },
    /// `user` joined or left `chat`: drop cached members, route the user's sessions.
    Members {
        /// The application.
        app: String,
        /// The chat.
        chat: u64,
        /// The user.
        user: String,
        /// Joined (true) or left.
        joined: bool,
        /// When set, the receiver answers `members_applied` with it once its
        /// cache has forgotten the chat's members (a removal waits for that).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack: Option<u64>,
    },
    /// The answer to a `members` frame that asked for one.
    MembersApplied {
        /// The `ack` of that frame.
        ack: u64,
    },
    /// The application's secret was rotated: close its sessions (4001).
    Revoke {
        /// The application.
        app: String,
    },
    /// Session `sid` of `user` was revoked: forget it, close its sockets (4001).
    RevokeSession {
        /// The application.
        app: String,
        /// The user.
        user: String,
        /// The session.
        sid: String,
    },
    /// Which sessions of `user` have a socket open on this node? Answered
    /// with `sessions_here` (the session list's `online`, cluster-wide).
    SessionsAsk {
        /// The application.
        app: String,
        /// The user.
        user: String,
        /// The number to answer with.
        ask: u64,
    },
    /// The answer to a `sessions_ask`.
    SessionsHere {
        /// The `ask` of that frame.
        ask: u64,
        /// The ids of the asked user's sessions with a socket open on the answering node.
        sids: Vec<String>,
    },
}

/// An event on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum WireEvent {
    /// A persisted message.
    Message {
        /// Chat.
        chat: u64,
        /// The message.
        m: Compact,
    },
    /// A message was edited or deleted (as it is now).
    Changed {
        /// Chat.
        chat: u64,
        /// The message.
        m: Compact,
    },
    /// A message got a reply (it as it is now).
    Thread {
        /// Chat.
        chat: u64,
        /// The parent.
        m: Compact,
    },
    /// A reaction was added or taken back.
    Reaction {
        /// Chat.
        chat: u64,
        /// Message.
        seq: u64,
        /// Who.
        user: String,
        /// With what.
        emoji: String,
        /// Added (or removed).
        on: bool,
        /// Users reacting with it now.
        count: u64,
    },
    /// A chat's info changed (it as it is now).
    ChatInfo {
        /// Chat.
        chat: u64,
        /// `group` or `direct`.
        kind: String,
        /// Name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Metadata.
        #[serde(default, skip_serializing_if = "Metadata::is_empty")]
        metadata: Metadata,
        /// Creator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_by: Option<String>,
        /// Created, in ms.
        created_at: i64,
        /// Updated, in ms.
        updated_at: i64,
    },
    /// A member joined.
    Joined {
        /// Chat.
        chat: u64,
        /// Who.
        user: String,
        /// As what.
        role: String,
    },
    /// A member left or was removed.
    Left {
        /// Chat.
        chat: u64,
        /// Who.
        user: String,
    },
    /// A member's role changed.
    Role {
        /// Chat.
        chat: u64,
        /// Whose.
        user: String,
        /// To what.
        role: String,
    },
    /// Someone types.
    Typing {
        /// Chat.
        chat: u64,
        /// Who.
        user: String,
    },
    /// Live events of the chat to this node were dropped: its sessions sync it.
    Resync {
        /// Chat.
        chat: u64,
    },
    /// A receipt position moved.
    Receipt {
        /// Chat.
        chat: u64,
        /// Whose.
        user: String,
        /// Read (true) or delivered.
        read: bool,
        /// Position.
        seq: u64,
    },
    /// Presence changed.
    Presence {
        /// Who.
        user: String,
        /// Online now.
        online: bool,
    },
}

/// An audience on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "a", rename_all = "snake_case")]
pub enum WireAudience {
    /// The chat's members (resolved by the receiver), but `except`.
    Chat {
        /// The chat.
        chat: u64,
        /// Left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
    },
    /// These users.
    Users {
        /// The users.
        users: Vec<String>,
    },
}

impl Wire {
    /// The frame for an event.
    pub fn event(app: &AppId, event: &Event, audience: &Audience) -> Self {
        let event = match event {
            Event::Message(m) => WireEvent::Message { chat: m.chat.get(), m: Compact::of(m) },
            Event::MessageChanged(m) => WireEvent::Changed { chat: m.chat.get(), m: Compact::of(m) },
            Event::ThreadUpdated(m) => WireEvent::Thread { chat: m.chat.get(), m: Compact::of(m) },
            Event::Reaction { chat, seq, user, emoji, on, count } => WireEvent::Reaction {
                chat: chat.get(),
                seq: seq.get(),
                user: user.as_str().to_owned(),
                emoji: emoji.clone(),
                on: *on,
                count: *count,
            },
            Event::ChatUpdated(c) => WireEvent::ChatInfo {
                chat: c.number.get(),
                kind: c.kind.as_str().to_owned(),
                name: c.name.clone(),
                description: c.description.clone(),
                metadata: c.metadata.clone(),
                created_by: c.created_by.as_ref().map(|u| u.as_str().to_owned()),
                created_at: c.created_at.millis(),
                updated_at: c.updated_at.millis(),
            },
            Event::MemberJoined { chat, user, role } => WireEvent::Joined {
                chat: chat.get(),
                user: user.as_str().to_owned(),
                role: role.as_str().to_owned(),
            },
            Event::MemberLeft { chat, user } => {
                WireEvent::Left { chat: chat.get(), user: user.as_str().to_owned() }
            }
            Event::RoleChanged { chat, user, role } => WireEvent::Role {
                chat: chat.get(),
                user: user.as_str().to_owned(),
                role: role.as_str().to_owned(),
            },
            Event::Typing { chat, user } => {
                WireEvent::Typing { chat: chat.get(), user: user.as_str().to_owned() }
            }
            Event::Receipt { chat, user, kind, seq } => WireEvent::Receipt {
                chat: chat.get(),
                user: user.as_str().to_owned(),
                read: *kind == ReceiptKind::Read,
                seq: seq.get(),
            },
            Event::Presence { user, online } => {
                WireEvent::Presence { user: user.as_str().to_owned(), online: *online }
            }
            Event::Resync { chat } => WireEvent::Resync { chat: chat.get() },
        };
        let audience = match audience {
            Audience::Chat { chat, except_user, .. } => WireAudience::Chat {
                chat: chat.get(),
                except: except_user.as_ref().map(|u| u.as_str().to_owned()),
            },
            Audience::Users(users) | Audience::MembersOf { users, .. } => {
                WireAudience::Users { users: users.iter().map(|u| u.as_str().to_owned()).collect() }
            }
        };
        Wire::Event { app: app.as_str().to_owned(), event: Box::new(event), audience }
    }

    /// The bytes of this frame. Serialising these types cannot fail.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a frame; `None` for anything malformed (logged by the caller).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

impl WireEvent {
    /// The event, in `app`; `None` when an id in it is not valid.
    pub fn into_event(self, app: &AppId) -> Option<Event> {
        let user = |raw: String| UserId::parse(&raw).ok();
        Some(match self {
            WireEvent::Message { chat, m } => Event::Message(m.into_message(app, ChatNumber(chat))?),
            WireEvent::Changed { chat, m } => Event::MessageChanged(m.into_message(app, ChatNumber(chat))?),
            WireEvent::Thread { chat, m } => Event::ThreadUpdated(m.into_message(app, ChatNumber(chat))?),
            WireEvent::Reaction { chat, seq, user: u, emoji, on, count } => Event::Reaction {
                chat: ChatNumber(chat),
                seq: MessageNumber(seq),
                user: user(u)?,
                emoji,
                on,
                count,
            },
            WireEvent::ChatInfo {
                chat,
                kind,
                name,
                description,
                metadata,
                created_by,
                created_at,
                updated_at,
            } => Event::ChatUpdated(Chat {
                app: app.clone(),
                number: ChatNumber(chat),
                kind: ChatKind::from_stored(&kind),
                name,
                description,
                metadata,
                created_by: match created_by {
                    Some(u) => Some(user(u)?),
                    None => None,
                },
                created_at: Timestamp(created_at),
                updated_at: Timestamp(updated_at),
            }),
            WireEvent::Joined { chat, user: u, role } => {
                Event::MemberJoined { chat: ChatNumber(chat), user: user(u)?, role: Role::parse(&role)? }
            }
            WireEvent::Left { chat, user: u } => Event::MemberLeft { chat: ChatNumber(chat), user: user(u)? },
            WireEvent::Role { chat, user: u, role } => {
                Event::RoleChanged { chat: ChatNumber(chat), user: user(u)?, role: Role::parse(&role)? }
            }
            WireEvent::Typing { chat, user: u } => Event::Typing { chat: ChatNumber(chat), user: user(u)? },
            WireEvent::Receipt { chat, user: u, read, seq } => Event::Receipt {
                chat: ChatNumber(chat),
                user: user(u)?,
                kind: if read { ReceiptKind::Read } else { ReceiptKind::Delivered },
                seq: MessageNumber(seq),
            },
            WireEvent::Presence { user: u, online } => Event::Presence { user: user(u)?, online },
            WireEvent::Resync { chat } => Event::Resync { chat: ChatNumber(chat) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Message;

    #[test]
    fn events_round_trip() {
        let app = AppId::generate();
        let alice = UserId::parse("alice").unwrap();
        let message = Message {
            app: app.clone(),
            chat: ChatNumber(3),
            number: MessageNumber(9),
            body: "hi ✓".into(),
            sender: Some(alice.clone()),
            client_msg_id: Some("c1".into()),
            reply_to: Some(MessageNumber(2)),
            created_at: Timestamp(1_700_000_000_000),
            edited_at: None,
            deleted_at: None,
            reply_count: 0,
            last_reply_at: None,
            attachments: Vec::new(),
            reactions: Default::default(),
        };
        let events = [
            Event::Message(message.clone()),
            Event::MessageChanged(Message {
                body: "edited".into(),
                edited_at: Some(Timestamp(1_700_000_000_500)),
                ..message.clone()
            }),
            Event::MessageChanged(Message {
                body: String::new(),
                edited_at: Some(Timestamp(1_700_000_000_500)),
                deleted_at: Some(Timestamp(1_700_000_000_900)),
                ..message
            }),
            Event::Reaction {
                chat: ChatNumber(3),
                seq: MessageNumber(9),
                user: alice.clone(),
                emoji: "👍".into(),
                on: false,
                count: 2,
            },
            Event::Typing { chat: ChatNumber(3), user: alice.clone() },
            Event::Receipt {
                chat: ChatNumber(3),
                user: alice.clone(),
                kind: ReceiptKind::Read,
                seq: MessageNumber(9),
            },
            Event::Presence { user: alice.clone(), online: true },
            Event::ChatUpdated(Chat {
                name: Some("crew".into()),
                description: Some("the crew".into()),
                metadata: serde_json::json!({"topic": "x", "n": 1}).as_object().unwrap().clone(),
                created_by: Some(alice.clone()),
                updated_at: Timestamp(1_700_000_001_000),
                ..Chat::new(app.clone(), ChatNumber(3), ChatKind::Group, Timestamp(1_700_000_000_000))
            }),
            Event::MemberJoined { chat: ChatNumber(3), user: alice.clone(), role: Role::Admin },
            Event::MemberLeft { chat: ChatNumber(3), user: alice.clone() },
            Event::RoleChanged { chat: ChatNumber(3), user: alice.clone(), role: Role::Owner },
        ];
        let members: crate::cache::members::Members = vec![alice.clone()].into();
        let audience = Audience::Chat { chat: ChatNumber(3), members, except_user: Some(alice.clone()) };
        for event in events {
            let wire = Wire::decode(&Wire::event(&app, &event, &audience).encode()).unwrap();
            let Wire::Event { app: a, event: e, audience: WireAudience::Chat { chat: 3, except } } = wire
            else {
                panic!("wrong shape");
            };
            assert_eq!(a, app.as_str());
            assert_eq!(except.as_deref(), Some("alice"));
            assert_eq!(format!("{:?}", e.into_event(&app).unwrap()), format!("{event:?}"));
        }
        assert!(Wire::decode(br#"{"t":"nope"}"#).is_none());
        let ask = Wire::SessionsAsk { app: app.as_str().to_owned(), user: "alice".into(), ask: 7 };
        let here = Wire::SessionsHere { ask: 7, sids: vec!["s1".into()] };
        for frame in [ask, here] {
            assert_eq!(Wire::decode(&frame.encode()), Some(frame));
        }
        let bad = WireEvent::Typing { chat: 1, user: "not valid".into() };
        assert!(bad.into_event(&app).is_none());
    }
}
