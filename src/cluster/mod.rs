//! The cluster: membership (chitchat gossip), the directory of who is
//! connected where (Redis), and what nodes tell each other (the wire).

pub mod directory;
pub mod member;
pub mod membership;
pub mod wire;
