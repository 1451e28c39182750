//! Property tests of the WebSocket frame codec (`weft::protocol::decode`, which
//! the gateway calls on every text frame): every valid frame, written as
//! `docs/protocol.md` shows it, decodes to itself; any text, any JSON and any
//! valid frame with one field broken decodes or is refused with a documented
//! code, keeping the request's `id` whenever it could be read — never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod props_support;

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use weft::ids::{AttachmentId, ChatNumber, MessageNumber};
use weft::protocol::{
    CLIENT_TYPES, ClientFrame, FrameError, MAX_SYNC_LIMIT, QuietHoursIn, RequestId, Resume, SyncFrom,
    SyncRequest, decode,
};

/// The codes a frame that cannot be decoded is answered with (`docs/protocol.md`, "Error codes").
const DECODE_CODES: &[&str] = &["malformed_json", "invalid_frame", "unknown_type"];

fn request_id() -> impl Strategy<Value = RequestId> {
    prop_oneof![any::<u64>().prop_map(RequestId::Number), "\\PC{1,16}".prop_map(RequestId::Text)]
}

fn id() -> impl Strategy<Value = Option<RequestId>> {
    option::of(request_id())
}

fn chat() -> impl Strategy<Value = ChatNumber> {
    any::<u64>().prop_map(ChatNumber)
}

fn seq() -> impl Strategy<Value = MessageNumber> {
    any::<u64>().prop_map(MessageNumber)
}

fn user() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.@:-]{1,128}"
}

/// Text with at least one character that is not white space.
fn body() -> impl Strategy<Value = String> {
    ("\\PC{0,40}", "[^\\s]", "\\PC{0,40}").prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

fn emoji() -> impl Strategy<Value = String> {
    "[^\\s\\p{Cc}]{1,16}"
}

fn attachment() -> impl Strategy<Value = AttachmentId> {
    "[A-Za-z0-9_-]{22}".prop_map(|s| AttachmentId::parse(&s).unwrap())
}

fn small_object() -> impl Strategy<Value = Map<String, Value>> {
    btree_map("\\PC{0,8}", scalar(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map("\\PC{0,10}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn quiet_hours() -> impl Strategy<Value = QuietHoursIn> {
    ("\\PC{0,6}", "\\PC{0,6}", "\\PC{0,12}").prop_map(|(from, to, tz)| QuietHoursIn { from, to, tz })
}

/// Absent, null, or a value: the three states of a clearable field.
fn clearable<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<Option<T>>> {
    option::of(option::of(value))
}

/// Every valid client frame (the rules of `decode` hold).
fn valid_frame() -> impl Strategy<Value = ClientFrame> {
    let send = (
        id(),
        prop_oneof![chat().prop_map(|c| (Some(c), None)), vec(user(), 1..5).prop_map(|r| (None, Some(r)))],
        body(),
        "\\PC{1,32}",
        option::of(seq()),
        option::of(vec(attachment(), 0..4)),
    )
        .prop_map(|(id, (chat, recipients), body, client_msg_id, reply_to, attachments)| {
            ClientFrame::Send { id, chat, body, client_msg_id, recipients, reply_to, attachments }
        });
    let sync = (
        id(),
        chat(),
        prop_oneof![
            seq().prop_map(SyncFrom::After),
            (1..=u64::MAX).prop_map(|n| SyncFrom::Before(MessageNumber(n))),
            Just(SyncFrom::Latest),
        ],
        1..=MAX_SYNC_LIMIT,
    )
        .prop_map(|(id, chat, from, limit)| ClientFrame::Sync(SyncRequest { id, chat, from, limit }));
    let hello = (id(), vec((chat(), seq()).prop_map(|(chat, after)| Resume { chat, after }), 0..8))
        .prop_map(|(id, resume)| ClientFrame::Hello { id, resume });
    let receipts = prop_oneof![
        (id(), chat()).prop_map(|(id, chat)| ClientFrame::Typing { id, chat }),
        (id(), chat(), seq()).prop_map(|(id, chat, seq)| ClientFrame::Delivered { id, chat, seq }),
        (id(), chat(), seq()).prop_map(|(id, chat, seq)| ClientFrame::Read { id, chat, seq }),
        (id(), chat(), seq()).prop_map(|(id, chat, seq)| ClientFrame::Delete { id, chat, seq }),
        (id(), chat(), seq(), body()).prop_map(|(id, chat, seq, body)| ClientFrame::Edit {
            id,
            chat,
            seq,
            body
        }),
        (id(), chat(), seq(), emoji()).prop_map(|(id, chat, seq, emoji)| ClientFrame::React {
            id,
            chat,
            seq,
            emoji
        }),
        (id(), chat(), seq(), emoji()).prop_map(|(id, chat, seq, emoji)| ClientFrame::Unreact {
            id,
            chat,
            seq,
            emoji
        }),
    ];
    let groups = prop_oneof![
        (id(), chat(), vec(user(), 1..5)).prop_map(|(id, chat, users)| ClientFrame::AddMembers {
            id,
            chat,
            users
        }),
        (id(), chat(), user()).prop_map(|(id, chat, user)| ClientFrame::RemoveMember { id, chat, user }),
        (id(), chat(), user(), prop::sample::select(vec!["owner", "admin", "member"]))
            .prop_map(|(id, chat, user, role)| ClientFrame::SetRole { id, chat, user, role: role.into() }),
        (id(), chat(), option::of(user())).prop_map(|(id, chat, successor)| ClientFrame::Leave {
            id,
            chat,
            successor
        }),
        (
            id(),
            chat(),
            clearable("\\PC{0,20}"),
            clearable("\\PC{0,20}"),
            clearable(small_object().prop_map(Value::Object))
        )
            .prop_filter("names something to change", |(_, _, n, d, m)| {
                n.is_some() || d.is_some() || m.is_some()
            })
            .prop_map(|(id, chat, name, description, metadata)| ClientFrame::UpdateChat {
                id,
                chat,
                name,
                description,
                metadata
            }),
    ];
    let others = prop_oneof![
        (id(), chat(), "\\PC{0,3}[^\\s]", "\\PC{0,3}[^\\s]", any::<u64>()).prop_map(
            |(id, chat, name, content_type, size)| ClientFrame::Upload { id, chat, name, content_type, size }
        ),
        (id(), "\\PC{0,20}", "\\PC{0,10}", "\\PC{0,40}").prop_map(|(id, device_id, provider, token)| {
            ClientFrame::RegisterDevice { id, device_id, provider, token }
        }),
        (id(), "\\PC{0,20}").prop_map(|(id, device_id)| ClientFrame::UnregisterDevice { id, device_id }),
        (
            id(),
            option::of(any::<bool>()),
            clearable("\\PC{0,20}"),
            option::of(any::<bool>()),
            option::of(btree_map("[0-9]{1,4}", "\\PC{0,8}", 0..4)),
            clearable(quiet_hours())
        )
            .prop_map(|(id, email, email_address, push, chats, quiet_hours)| {
                ClientFrame::NotificationSettings { id, email, email_address, push, chats, quiet_hours }
            }),
        (id(), "\\PC{0,30}", option::of(chat()), option::of(1..=100u32), option::of(1..=100u32)).prop_map(
            |(id, query, chat, page, per_page)| ClientFrame::Search { id, query, chat, page, per_page }
        ),
        (id(), "\\PC{0,60}").prop_map(|(id, token)| ClientFrame::Refresh { id, token }),
    ];
    prop_oneof![send, sync, hello, receipts, groups, others]
}

/// A frame as a client writes it (`docs/protocol.md`): the test's own encoder,
/// so the decoder is checked against the documented shape, not against itself.
fn encode(frame: &ClientFrame) -> Value {
    fn put<T: serde::Serialize>(object: &mut Map<String, Value>, key: &str, value: &Option<T>) {
        if let Some(value) = value {
            object.insert(key.into(), json!(value));
        }
    }
    let mut o = Map::new();
    o.insert("type".into(), json!(frame.kind()));
    let id = &frame.request_id();
    put(&mut o, "id", id);
    match frame.clone() {
        ClientFrame::Send { chat, body, client_msg_id, recipients, reply_to, attachments, .. } => {
            put(&mut o, "chat", &chat);
            o.insert("body".into(), json!(body));
            o.insert("client_msg_id".into(), json!(client_msg_id));
            put(&mut o, "recipients", &recipients);
            put(&mut o, "reply_to", &reply_to);
            put(&mut o, "attachments", &attachments);
        }
        ClientFrame::Sync(SyncRequest { chat, from, limit, .. }) => {
            o.insert("chat".into(), json!(chat));
            match from {
                SyncFrom::After(n) => o.insert("after".into(), json!(n)),
                SyncFrom::Before(n) => o.insert("before".into(), json!(n)),
                SyncFrom::Latest => o.insert("latest".into(), json!(true)),
            };
            // The default may be left out.
            if limit != 100 {
                o.insert("limit".into(), json!(limit));
            }
        }
        ClientFrame::Hello { resume, .. } => {
            let resume: Vec<Value> =
                resume.iter().map(|r| json!({"chat": r.chat, "after": r.after})).collect();
            o.insert("resume".into(), json!(resume));
        }
        ClientFrame::Typing { chat, .. } => {
            o.insert("chat".into(), json!(chat));
        }
        ClientFrame::Delivered { chat, seq, .. }
        | ClientFrame::Read { chat, seq, .. }
        | ClientFrame::Delete { chat, seq, .. } => {
            o.insert("chat".into(), json!(chat));
            o.insert("seq".into(), json!(seq));
        }
        ClientFrame::Edit { chat, seq, body, .. } => {
            o.insert("chat".into(), json!(chat));
            o.insert("seq".into(), json!(seq));
            o.insert("body".into(), json!(body));
        }
        ClientFrame::React { chat, seq, emoji, .. } | ClientFrame::Unreact { chat, seq, emoji, .. } => {
            o.insert("chat".into(), json!(chat));
            o.insert("seq".into(), json!(seq));
            o.insert("emoji".into(), json!(emoji));
        }
        ClientFrame::Upload { chat, name, content_type, size, .. } => {
            o.insert("chat".into(), json!(chat));
            o.insert("name".into(), json!(name));
            o.insert("content_type".into(), json!(content_type));
            o.insert("size".into(), json!(size));
        }
        ClientFrame::AddMembers { chat, users, .. } => {
            o.insert("chat".into(), json!(chat));
            o.insert("users".into(), json!(users));
        }
        ClientFrame::RemoveMember { chat, user, .. } => {
            o.insert("chat".into(), json!(chat));
            o.insert("user".into(), json!(user));
        }
        ClientFrame::SetRole { chat, user, role, .. } => {
            o.insert("chat".into(), json!(chat));
            o.insert("user".into(), json!(user));
            o.insert("role".into(), json!(role));
        }
        ClientFrame::UpdateChat { chat, name, description, metadata, .. } => {
            o.insert("chat".into(), json!(chat));
            put(&mut o, "name", &name);
            put(&mut o, "description", &description);
            put(&mut o, "metadata", &metadata);
        }
        ClientFrame::Leave { chat, successor, .. } => {
            o.insert("chat".into(), json!(chat));
            put(&mut o, "successor", &successor);
        }
        ClientFrame::RegisterDevice { device_id, provider, token, .. } => {
            o.insert("device_id".into(), json!(device_id));
            o.insert("provider".into(), json!(provider));
            o.insert("token".into(), json!(token));
        }
        ClientFrame::UnregisterDevice { device_id, .. } => {
            o.insert("device_id".into(), json!(device_id));
        }
        ClientFrame::NotificationSettings { email, email_address, push, chats, quiet_hours, .. } => {
            put(&mut o, "email", &email);
            put(&mut o, "email_address", &email_address);
            put(&mut o, "push", &push);
            put(&mut o, "chats", &chats);
            put(&mut o, "quiet_hours", &quiet_hours);
        }
        ClientFrame::Search { query, chat, page, per_page, .. } => {
            o.insert("query".into(), json!(query));
            put(&mut o, "chat", &chat);
            put(&mut o, "page", &page);
            put(&mut o, "per_page", &per_page);
        }
        ClientFrame::Refresh { token, .. } => {
            o.insert("token".into(), json!(token));
        }
    }
    Value::Object(o)
}

/// The id an answer must echo: the frame's `id`, when it is one.
fn readable_id(value: &Value) -> Option<RequestId> {
    value.get("id").and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Decodes `text`; a refusal must carry a documented code and, when the text
/// is a JSON object with a readable `id`, that id.
fn decode_checked(text: &str) -> Result<Option<ClientFrame>, TestCaseError> {
    match decode(text) {
        Ok(frame) => Ok(Some(frame)),
        Err((error, echoed)) => {
            prop_assert!(DECODE_CODES.contains(&error.code()), "{error:?} has code {}", error.code());
            prop_assert!(!error.to_string().is_empty());
            match serde_json::from_str::<Value>(text) {
                Ok(value) => {
                    prop_assert_ne!(error.code(), "malformed_json");
                    prop_assert_eq!(echoed, readable_id(&value), "{}", text);
                }
                Err(_) => prop_assert_eq!((error, echoed), (FrameError::MalformedJson, None)),
            }
            Ok(None)
        }
    }
}

/// The fields of every frame, so broken frames name real fields.
const FIELDS: &[&str] = &[
    "id",
    "chat",
    "body",
    "client_msg_id",
    "recipients",
    "reply_to",
    "attachments",
    "after",
    "before",
    "latest",
    "limit",
    "resume",
    "seq",
    "emoji",
    "name",
    "content_type",
    "size",
    "users",
    "user",
    "role",
    "description",
    "metadata",
    "successor",
    "device_id",
    "provider",
    "token",
    "email",
    "email_address",
    "push",
    "chats",
    "quiet_hours",
    "query",
    "page",
    "per_page",
];

/// One way to break a frame.
#[derive(Clone, Debug)]
enum Break {
    /// A field gets a value of any type.
    Set(usize, Value),
    /// A field goes.
    Remove(usize),
    /// A field no frame has.
    Unknown(String, Value),
}

fn breakage() -> impl Strategy<Value = Break> {
    prop_oneof![
        (any::<prop::sample::Index>(), any_json()).prop_map(|(i, v)| Break::Set(i.index(FIELDS.len()), v)),
        any::<prop::sample::Index>().prop_map(|i| Break::Remove(i.index(FIELDS.len()))),
        ("[a-z_]{1,12}", scalar()).prop_map(|(k, v)| Break::Unknown(k, v)),
    ]
}

proptest! {
    #![proptest_config(props_support::budget(1024))]

    /// encode → decode → the same frame, for every kind of frame.
    #[test]
    fn valid_frames_round_trip(frame in valid_frame()) {
        let text = encode(&frame).to_string();
        match decode(&text) {
            Ok(decoded) => prop_assert_eq!(decoded, frame),
            Err((e, _)) => prop_assert!(false, "{text} refused: {e}"),
        }
    }

    /// Any text at all: a frame or a documented refusal.
    #[test]
    fn any_text_is_decoded_or_refused(text in "\\PC{0,64}|.{0,64}") {
        decode_checked(&text)?;
    }

    /// Any JSON, and objects whose `type` is a real one with any fields of any type.
    #[test]
    fn any_json_is_decoded_or_refused(
        value in any_json(),
        kind in prop::sample::select(CLIENT_TYPES),
        fields in btree_map(prop::sample::select(FIELDS), any_json(), 0..6),
    ) {
        decode_checked(&value.to_string())?;
        let mut object: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        object.insert("type".into(), json!(kind));
        decode_checked(&Value::Object(object).to_string())?;
    }

    /// A valid frame with a field of the wrong type, missing or unknown: still
    /// a frame (an optional field went, or the value happens to fit) or
    /// `invalid_frame` with the frame's id.
    #[test]
    fn broken_frames_are_refused_with_their_id(frame in valid_frame(), breaks in vec(breakage(), 1..3)) {
        let Value::Object(mut object) = encode(&frame) else { unreachable!() };
        for b in breaks {
            match b {
                Break::Set(i, value) => object.insert(FIELDS[i].into(), value),
                Break::Remove(i) => object.remove(FIELDS[i]),
                Break::Unknown(key, value) if !FIELDS.contains(&key.as_str()) && key != "type" => {
                    object.insert(key, value)
                }
                Break::Unknown(..) => None,
            };
        }
        let text = Value::Object(object).to_string();
        if decode_checked(&text)?.is_none() {
            prop_assert_eq!(decode(&text).unwrap_err().0.code(), "invalid_frame");
        }
    }

    /// Any bytes a client may send as text (the socket only checks UTF-8).
    #[test]
    fn any_bytes_are_decoded_or_refused(bytes in vec(any::<u8>(), 0..128)) {
        decode_checked(&String::from_utf8_lossy(&bytes))?;
    }
}

#[test]
fn the_frame_types_are_the_decoders() {
    let kinds: BTreeMap<&str, ()> = CLIENT_TYPES.iter().map(|k| (*k, ())).collect();
    assert_eq!(kinds.len(), CLIENT_TYPES.len(), "no type listed twice");
    for kind in CLIENT_TYPES {
        let (error, _) = decode(&json!({"type": kind, "id": 1, "nonsense": true}).to_string()).unwrap_err();
        assert_eq!(error.code(), "invalid_frame", "{kind}");
    }
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    // serde_json's recursion limit (128) makes them malformed, not a stack overflow.
    for depth in [1_000, 100_000] {
        let (open, close) = ("[".repeat(depth), "]".repeat(depth));
        assert_eq!(decode(&format!("{open}{close}")).unwrap_err().0, FrameError::MalformedJson);
        let (error, id) = decode(&format!(r#"{{"type":"send","id":1,"chat":{open}1{close}}}"#)).unwrap_err();
        assert_eq!((error.code(), id), ("malformed_json", None), "{depth}");
    }
}
