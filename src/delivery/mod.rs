//! Delivery: getting events to live sessions, on this node and (through a
//! [`Fabric`]) on others. It sits beneath `chat`, `gateway` and `cluster` and
//! imports none of them.
//!
//! - [`fabric`]: the seam — what is delivered ([`Event`]), to whom ([`Audience`]),
//!   and the [`Fabric`] trait the domain hands events to;
//! - [`hub`]: this node's sessions by application and user; on one node the hub
//!   is the whole fabric;
//! - [`outbox`]: a session's bounded queue and its cut-off flag;
//! - [`outgoing`]: the queued frame, encoded once per event for every recipient;
//! - [`presence`]: who is online on this node, with the offline debounce;
//! - [`wire`]: a session's plain TCP socket, shared by the session and the fan-out.

pub mod fabric;
pub mod hub;
pub mod outbox;
pub mod outgoing;
pub mod presence;
pub mod wire;

pub use fabric::{Audience, Event, Fabric};
pub use hub::{Caps, Hub, Over, SessionHandle, Slot};
pub use outbox::{Cut, Delivered, Flushed, Outbox, Wake};
pub use outgoing::{Encoded, Outgoing, message_out, message_out_for, outgoing};
pub use wire::Wire;

/// One session on this node (unique per process, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}
