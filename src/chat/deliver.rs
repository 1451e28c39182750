//! The seam between the domain and the transport: what is delivered, to whom.

use crate::gateway::hub::SessionId;
use crate::ids::{AppId, ChatNumber, MessageNumber, UserId};
use crate::model::{Message, ReceiptKind};

/// Something the live sessions of some users should see.
#[derive(Clone, Debug)]
pub enum Event {
    /// A persisted message.
    Message(Message),
    /// `user` is typing in `chat`.
    Typing {
        /// The chat.
        chat: ChatNumber,
        /// Who types.
        user: UserId,
    },
    /// `user`'s receipt position in `chat` moved.
    Receipt {
        /// The chat.
        chat: ChatNumber,
        /// Whose position.
        user: UserId,
        /// Delivered or read.
        kind: ReceiptKind,
        /// The new position.
        seq: MessageNumber,
    },
    /// `user` came online or went offline.
    Presence {
        /// Who.
        user: UserId,
        /// Online now.
        online: bool,
    },
}

/// Hands events to the sessions of their recipients (this node's hub now;
/// other nodes through the cluster transport later).
pub trait Deliver: Send + Sync + 'static {
    /// Delivers `event` to every live session of `recipients` in `app` but `except`.
    fn deliver(&self, app: &AppId, event: &Event, recipients: &[UserId], except: Option<SessionId>);
}
