//! What can go wrong in the domain, and what kind of failure each cause is.
//!
//! The edges (REST and WebSocket) never look at a [`ChatError`]'s variants:
//! they map its [`ErrorKind`] through the one table in `crate::edge`, so a
//! cause has one code wherever a client meets it.

use crate::attachments::AttachmentsError;
use crate::auth::TokenError;
use crate::notify::WebhookError;
use crate::notify::queue::QueueError;
use crate::search::SearchError;
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
    /// The message was deleted: it cannot be changed any more.
    #[error("the message was deleted")]
    MessageDeleted,
    /// The acting user lacks a permission; the reason names it.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The user named by the request (to remove, say) is not a member of the chat.
    #[error("the user is not a member of this chat")]
    MemberNotFound,
    /// The acting user is not a member of the chat it acts in.
    #[error("you are not a member of this chat")]
    NotAMember,
    /// The application lets only its backend create groups (`user_groups: backend_only`).
    #[error("this application lets only its backend create groups; send to one recipient or to a chat")]
    UserGroupsClosed,
    /// A request broke a rule of the domain; the reason names the field.
    #[error("{0}")]
    Invalid(&'static str),
    /// A send with this idempotency key is still being committed; retry shortly.
    #[error("the first request with this idempotency key is still being committed; retry")]
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
    /// The search index failed or is not configured.
    #[error(transparent)]
    Search(SearchError),
    /// An attachment cannot be granted or attached: the reason says which and why.
    #[error("{}", describe_attachment(.id.as_deref(), .reason))]
    InvalidAttachment {
        /// The attachment id the request named, when the refusal is about one.
        id: Option<String>,
        /// What is wrong.
        reason: &'static str,
    },
    /// The attachment store failed or attachments are off.
    #[error(transparent)]
    Attachments(#[from] AttachmentsError),
    /// A webhook request failed (not found, invalid, or its queue or store failed).
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// No such device of the user.
    #[error("device not found")]
    DeviceNotFound,
    /// No such session of the user (or it was revoked).
    #[error("session not found")]
    SessionNotFound,
    /// A refresh token that is unknown, expired, or superseded by a refresh whose pair is not used yet.
    #[error("the refresh token is not valid")]
    InvalidRefreshToken,
    /// A refresh token was used again after its session moved on: the session is revoked.
    #[error("the refresh token was used before: its session is revoked")]
    SessionRevoked,
    /// A value the client sent is invalid (the message says which and why).
    #[error("{0}")]
    InvalidValue(String),
}

fn describe_attachment(id: Option<&str>, reason: &str) -> String {
    match id {
        Some(id) => format!("attachment {id}: {reason}"),
        None => reason.to_owned(),
    }
}

/// What kind of failure a [`ChatError`] is: what the client should do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Something the request names does not exist.
    NotFound(Missing),
    /// The caller may not do this.
    Forbidden(Refusal),
    /// The request broke a rule: fix it, do not retry as is.
    Invalid,
    /// An attachment was refused (unknown, foreign, not uploaded, too big…).
    InvalidAttachment,
    /// What the request names is gone for good (a deleted message).
    Gone,
    /// An idempotency key came again with a different request.
    KeyReused,
    /// A service behind the node failed: retry later (the same request is safe).
    Unavailable(Service),
    /// The same idempotent request is still running: retry shortly.
    InFlight,
    /// A bug or unreadable data: logged where it is mapped.
    Internal,
}

/// What was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Missing {
    /// The application.
    Application,
    /// The chat.
    Chat,
    /// The message.
    Message,
    /// The member.
    Member,
    /// The webhook.
    Webhook,
    /// The device.
    Device,
    /// The session (refresh-token family).
    Session,
}

/// Why a caller is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The acting user is not a member of the chat.
    NotAMember,
    /// The user token is forged, expired or for no application.
    InvalidToken,
    /// The refresh token is unknown, expired or superseded.
    InvalidRefreshToken,
    /// The token's session was revoked.
    SessionRevoked,
    /// The application lets only its backend create groups.
    UserGroupsClosed,
    /// The acting user lacks a permission (the error's message names it).
    Permission,
}

/// Which service failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// The store (ScyllaDB/Cassandra, or the embedded file).
    Store,
    /// Redis.
    Redis,
    /// The application's identity provider (its JWKS URL).
    IdentityProvider,
    /// This node: it is shutting down; go to another one.
    Node,
    /// The search index (OpenSearch, the embedded index, or none configured).
    Search,
    /// The attachment store (S3, the node's files, or none configured).
    Attachments,
}

impl ChatError {
    /// The kind of failure, for the edges' one mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ChatError::ApplicationNotFound => ErrorKind::NotFound(Missing::Application),
            ChatError::ChatNotFound => ErrorKind::NotFound(Missing::Chat),
            ChatError::MessageNotFound => ErrorKind::NotFound(Missing::Message),
            ChatError::MessageDeleted => ErrorKind::Gone,
            ChatError::Forbidden(_) => ErrorKind::Forbidden(Refusal::Permission),
            ChatError::MemberNotFound => ErrorKind::NotFound(Missing::Member),
            ChatError::NotAMember => ErrorKind::Forbidden(Refusal::NotAMember),
            ChatError::UserGroupsClosed => ErrorKind::Forbidden(Refusal::UserGroupsClosed),
            ChatError::Invalid(_) => ErrorKind::Invalid,
            ChatError::InFlight => ErrorKind::InFlight,
            ChatError::KeyReused => ErrorKind::KeyReused,
            ChatError::Token(TokenError::Sign(_)) => ErrorKind::Internal,
            ChatError::Token(TokenError::KeysUnavailable(_)) => {
                ErrorKind::Unavailable(Service::IdentityProvider)
            }
            ChatError::Token(TokenError::SessionRevoked) | ChatError::SessionRevoked => {
                ErrorKind::Forbidden(Refusal::SessionRevoked)
            }
            ChatError::Token(_) => ErrorKind::Forbidden(Refusal::InvalidToken),
            ChatError::Store(e) | ChatError::Sequence(SequenceError::Store(e)) => store_kind(e),
            ChatError::Write(WriteError::Store(e)) => store_kind(e),
            ChatError::Sequence(SequenceError::Redis(_)) => ErrorKind::Unavailable(Service::Redis),
            ChatError::Write(WriteError::Closed) => ErrorKind::Unavailable(Service::Node),
            ChatError::Search(SearchError::Unavailable(_)) => ErrorKind::Unavailable(Service::Search),
            ChatError::Search(SearchError::Internal(_)) => ErrorKind::Internal,
            ChatError::InvalidAttachment { .. } => ErrorKind::InvalidAttachment,
            ChatError::Attachments(_) => ErrorKind::Unavailable(Service::Attachments),
            ChatError::Webhook(WebhookError::NotFound) => ErrorKind::NotFound(Missing::Webhook),
            ChatError::Webhook(WebhookError::Invalid(_)) => ErrorKind::Invalid,
            ChatError::Webhook(WebhookError::Store(e)) => store_kind(e),
            ChatError::Webhook(WebhookError::Queue(QueueError::Redis(_))) => {
                ErrorKind::Unavailable(Service::Redis)
            }
            ChatError::Webhook(WebhookError::Queue(_)) => ErrorKind::Internal,
            ChatError::DeviceNotFound => ErrorKind::NotFound(Missing::Device),
            ChatError::SessionNotFound => ErrorKind::NotFound(Missing::Session),
            ChatError::InvalidRefreshToken => ErrorKind::Forbidden(Refusal::InvalidRefreshToken),
            ChatError::InvalidValue(_) => ErrorKind::Invalid,
        }
    }

    /// One error of every variant (and every kind a variant can take), for
    /// the tests that walk them through both edges.
    #[cfg(test)]
    pub(crate) fn examples() -> Vec<ChatError> {
        use std::sync::Arc;
        let io = || Box::new(std::io::Error::other("down")) as Box<dyn std::error::Error + Send + Sync>;
        let jwt = || jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidToken);
        let redis = || redis::RedisError::from((redis::ErrorKind::Io, "down"));
        let all = vec![
            ChatError::ApplicationNotFound,
            ChatError::ChatNotFound,
            ChatError::MessageNotFound,
            ChatError::MessageDeleted,
            ChatError::Forbidden("only its author may edit a message"),
            ChatError::MemberNotFound,
            ChatError::NotAMember,
            ChatError::UserGroupsClosed,
            ChatError::Invalid("`seq` is past the chat's newest message"),
            ChatError::InFlight,
            ChatError::KeyReused,
            ChatError::Token(TokenError::Expired),
            ChatError::Token(TokenError::Invalid(jwt())),
            ChatError::Token(TokenError::Sign(jwt())),
            ChatError::Token(TokenError::KeysUnavailable(Arc::new(crate::auth::jwks::FetchError::TooLarge))),
            ChatError::Store(StoreError::Unavailable(io())),
            ChatError::Store(StoreError::Embedded(io())),
            ChatError::Store(StoreError::Corrupt { what: "a message" }),
            ChatError::Sequence(SequenceError::Redis(redis())),
            ChatError::Sequence(SequenceError::Store(StoreError::Unavailable(io()))),
            ChatError::Write(WriteError::Store(Arc::new(StoreError::Unavailable(io())))),
            ChatError::Write(WriteError::Closed),
            ChatError::Search(SearchError::Unavailable(io())),
            ChatError::Search(SearchError::Internal(io())),
            ChatError::InvalidAttachment { id: Some("x".into()), reason: "was never uploaded" },
            ChatError::Attachments(AttachmentsError::Disabled),
            ChatError::Webhook(WebhookError::NotFound),
            ChatError::Webhook(WebhookError::Invalid("unknown event `x`".into())),
            ChatError::Webhook(WebhookError::Store(StoreError::Unavailable(io()))),
            ChatError::Webhook(WebhookError::Queue(QueueError::Redis(redis()))),
            ChatError::Webhook(WebhookError::Queue(QueueError::Corrupt { what: "an entry" })),
            ChatError::DeviceNotFound,
            ChatError::InvalidValue("`token` is not an FCM registration token".into()),
            ChatError::SessionNotFound,
            ChatError::InvalidRefreshToken,
            ChatError::SessionRevoked,
            ChatError::Token(TokenError::SessionRevoked),
        ];
        // A new variant fails to compile here until it is listed above.
        for e in &all {
            match e {
                ChatError::ApplicationNotFound
                | ChatError::ChatNotFound
                | ChatError::MessageNotFound
                | ChatError::MessageDeleted
                | ChatError::Forbidden(_)
                | ChatError::MemberNotFound
                | ChatError::NotAMember
                | ChatError::UserGroupsClosed
                | ChatError::Invalid(_)
                | ChatError::InFlight
                | ChatError::KeyReused
                | ChatError::Token(_)
                | ChatError::Store(_)
                | ChatError::Sequence(_)
                | ChatError::Write(_)
                | ChatError::Search(_)
                | ChatError::InvalidAttachment { .. }
                | ChatError::Attachments(_)
                | ChatError::Webhook(_)
                | ChatError::DeviceNotFound
                | ChatError::SessionNotFound
                | ChatError::InvalidRefreshToken
                | ChatError::SessionRevoked
                | ChatError::InvalidValue(_) => {}
            }
        }
        all
    }
}

fn store_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::Unavailable(_) | StoreError::Embedded(_) => ErrorKind::Unavailable(Service::Store),
        StoreError::Corrupt { .. } | StoreError::SchemaOutdated { .. } => ErrorKind::Internal,
    }
}
