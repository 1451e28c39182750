//! The outgoing frame: what waits in a session's outbox, encoded once per
//! event and shared by every recipient (`Utf8Bytes` and `Bytes` clones are
//! reference counts).

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;

use super::fabric::Event;
use crate::ids::UserId;
use crate::ids::{ChatNumber, MessageNumber};
use crate::model::{self, Message};
use crate::protocol::{ChatOut, MessageOut, ReactionOp, ReactionOut, ReceiptKind, ServerFrame};

/// What waits in a session's outbox.
#[derive(Clone, Debug)]
pub enum Outgoing {
    /// Any frame, written as is.
    Frame {
        /// Its `type`, for metrics.
        kind: &'static str,
        /// The encoded frame.
        frame: Encoded,
    },
    /// A `message` frame, which a session that is catching up may hold back or skip.
    Message {
        /// Its chat.
        chat: ChatNumber,
        /// Its number.
        seq: MessageNumber,
        /// The encoded frame.
        frame: Encoded,
        /// When the message was created (ms since the epoch), for the delivery latency.
        at: i64,
    },
}

impl Outgoing {
    /// The encoded frame.
    pub fn frame(&self) -> &Encoded {
        match self {
            Self::Frame { frame, .. } | Self::Message { frame, .. } => frame,
        }
    }

    /// The encoded frame, taken out.
    pub fn into_frame(self) -> Encoded {
        match self {
            Self::Frame { frame, .. } | Self::Message { frame, .. } => frame,
        }
    }

    /// The encoded frame's length, in bytes.
    pub fn byte_len(&self) -> usize {
        self.frame().text.len()
    }
}

/// A frame's text, and the same text as a whole WebSocket frame (a server's:
/// unmasked), for the fan-out to write to a socket itself.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The JSON, as tungstenite writes it.
    pub text: Utf8Bytes,
    /// The WebSocket frame carrying it: header, then the JSON.
    pub ws: Bytes,
}

impl From<String> for Encoded {
    fn from(text: String) -> Self {
        let len = text.len();
        let mut ws = Vec::with_capacity(len + 10);
        // FIN and the text opcode (RFC 6455, 5.2), then the length in 7, 7+16 or 7+64 bits.
        ws.push(0x81);
        match u16::try_from(len) {
            Ok(short) if short < 126 => ws.push(short as u8),
            Ok(short) => {
                ws.push(126);
                ws.extend_from_slice(&short.to_be_bytes());
            }
            Err(_) => {
                ws.push(127);
                ws.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        ws.extend_from_slice(text.as_bytes());
        Self { text: text.into(), ws: ws.into() }
    }
}

/// The outbox item of an event, encoded once for all its recipients: each
/// recipient's copy shares the encoded bytes (one reference count).
pub fn outgoing(event: &Event) -> Outgoing {
    match event {
        Event::Message(m) => Outgoing::Message {
            chat: m.chat,
            seq: m.number,
            frame: ServerFrame::Message(message_out(m)).to_text().into(),
            at: m.created_at.millis(),
        },
        Event::MessageChanged(m) => match m.deleted_at {
            Some(deleted_at) => {
                frame(&ServerFrame::MessageDeleted { chat: m.chat, seq: m.number, deleted_at })
            }
            None => frame(&ServerFrame::MessageEdited {
                chat: m.chat,
                seq: m.number,
                body: m.body.clone(),
                edited_at: m.edited_at.unwrap_or(m.created_at),
            }),
        },
        Event::ThreadUpdated(m) => frame(&ServerFrame::ThreadUpdated {
            chat: m.chat,
            seq: m.number,
            reply_count: m.reply_count,
            last_reply_at: m.last_reply_at,
        }),
        Event::Reaction { chat, seq, user, emoji, on, count } => frame(&ServerFrame::Reaction {
            chat: *chat,
            seq: *seq,
            user: user.clone(),
            emoji: emoji.clone(),
            op: if *on { ReactionOp::Add } else { ReactionOp::Remove },
            count: *count,
        }),
        Event::ChatUpdated(chat) => frame(&ServerFrame::ChatUpdated(chat_out(chat))),
        Event::MemberJoined { chat, user, role } => {
            frame(&ServerFrame::MemberJoined { chat: *chat, user: user.clone(), role: role.as_str() })
        }
        Event::MemberLeft { chat, user } => {
            frame(&ServerFrame::MemberLeft { chat: *chat, user: user.clone() })
        }
        Event::RoleChanged { chat, user, role } => {
            frame(&ServerFrame::RoleChanged { chat: *chat, user: user.clone(), role: role.as_str() })
        }
        Event::Typing { chat, user } => frame(&ServerFrame::Typing { chat: *chat, user: user.clone() }),
        Event::Receipt { chat, user, kind, seq } => {
            let kind = match kind {
                model::ReceiptKind::Delivered => ReceiptKind::Delivered,
                model::ReceiptKind::Read => ReceiptKind::Read,
            };
            frame(&ServerFrame::Receipt { chat: *chat, user: user.clone(), kind, seq: *seq })
        }
        Event::Presence { user, online } => {
            frame(&ServerFrame::Presence { user: user.clone(), online: *online })
        }
        Event::Resync { chat } => frame(&ServerFrame::Resync { chat: *chat }),
    }
}

fn frame(frame: &ServerFrame) -> Outgoing {
    Outgoing::Frame { kind: frame.kind(), frame: frame.to_text().into() }
}

/// A stored message as `reader` sees it: with the reactions, and which are the reader's.
pub fn message_out_for(m: &Message, reader: &UserId) -> MessageOut {
    MessageOut { reactions: ReactionOut::of(&m.reactions, Some(reader)), ..message_out(m) }
}

/// A chat's info as clients see it.
pub fn chat_out(chat: &model::Chat) -> ChatOut {
    ChatOut {
        chat: chat.number,
        kind: chat.kind.as_str(),
        name: chat.name.clone(),
        description: chat.description.clone(),
        metadata: chat.metadata.clone(),
        created_by: chat.created_by.clone(),
        updated_at: chat.updated_at,
    }
}

/// A stored message as clients see it (no reactions: live frames are the same for every reader).
pub fn message_out(m: &Message) -> MessageOut {
    MessageOut {
        chat: m.chat,
        seq: m.number,
        sender: m.sender.clone(),
        body: (!m.is_deleted()).then(|| m.body.clone()),
        sent_at: m.created_at,
        client_msg_id: m.client_msg_id.clone(),
        reply_to: m.reply_to,
        edited_at: m.edited_at,
        deleted: m.is_deleted(),
        deleted_at: m.deleted_at,
        reply_count: m.reply_count,
        last_reply_at: m.last_reply_at,
        attachments: if m.is_deleted() { Vec::new() } else { m.attachments.clone() },
        mentions: if m.is_deleted() { Vec::new() } else { model::mentions(&m.body) },
        reactions: std::collections::BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_websocket_frame_carries_the_text_with_the_length_in_each_of_its_three_sizes() {
        for len in [0, 125, 126, 65_535, 65_536, 200_000] {
            let encoded = Encoded::from("x".repeat(len));
            let mut cursor = std::io::Cursor::new(&encoded.ws[..]);
            let (header, payload) = tungstenite::protocol::frame::FrameHeader::parse(&mut cursor)
                .unwrap()
                .unwrap_or_else(|| panic!("a whole header for {len}"));
            assert!(header.is_final && header.mask.is_none(), "{len}");
            assert_eq!(
                header.opcode,
                tungstenite::protocol::frame::coding::OpCode::Data(
                    tungstenite::protocol::frame::coding::Data::Text
                )
            );
            assert_eq!(payload, len as u64);
            assert_eq!(&encoded.ws[cursor.position() as usize..], encoded.text.as_bytes());
        }
    }
}
