//! What can go wrong in the domain.

use crate::auth::TokenError;
use crate::sequence::SequenceError;
use crate::store::{StoreError, WriteError};

/// A failed domain operation.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// No application has this token.
    #[error("application not found")]
    ApplicationNotFound,
    /// The application has no chat with this number.
    #[error("chat not found")]
    ChatNotFound,
    /// The chat has no message with this number.
    #[error("message not found")]
    MessageNotFound,
    /// The user is not a member of the chat.
    #[error("user is not a member of this chat")]
    NotAMember,
    /// A request broke a rule of the domain (answered as `invalid_frame` / 400).
    #[error("{0}")]
    Invalid(&'static str),
    /// A send with this `client_msg_id` is still being committed; retry shortly.
    #[error("the first send with this client_msg_id is still being committed; retry")]
    InFlight,
    /// An idempotency key sent again with a different chat, body or `reply_to` (REST).
    #[error("this idempotency key was used for a different message")]
    KeyReused,
    /// A user token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Numbering failed.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// Persisting a message failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}
