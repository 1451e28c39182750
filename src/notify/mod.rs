//! Notifying what happens off the send path: webhooks (and, later, push and
//! email). Fed by what was committed, never on the way to an ack.

pub mod queue;
