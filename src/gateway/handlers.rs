//! What a session does with each client frame.

use super::limits::Refused;
use super::session::Session;
use crate::chat::{
    Author, ChatChanges, ChatError, MetadataChange, NewUpload, Numbered, SendRequest, Staged, Target,
};
use crate::delivery::message_out_for;
use crate::ids::{ChatNumber, MessageNumber, UserId};
use crate::model::{ReceiptKind, Role};
use crate::protocol::{
    self, ClientFrame, FrameError, RequestId, Resume, ServerFrame, SyncFrom, SyncRequest, UploadOut,
};

/// The answers to one client frame, and how many of them count toward flooding.
#[derive(Default)]
pub(super) struct Answers {
    pub(super) frames: Vec<ServerFrame>,
    pub(super) strikes: u32,
    /// A send refused by the user's send bucket: a strike only when the
    /// client came back before the last refusal said (`Budget::send_refused`).
    pub(super) refused_send: Option<Refused>,
}

impl Answers {
    pub(super) fn one(frame: ServerFrame) -> Self {
        Self { frames: vec![frame], ..Self::default() }
    }

    /// The answer to a frame that could not be decoded.
    pub(super) fn bad(error: &FrameError, id: Option<RequestId>) -> Self {
        Self { frames: vec![ServerFrame::from_frame_error(error, id)], strikes: 1, ..Self::default() }
    }

    /// The answer to a failed request; the client's mistakes count toward flooding.
    pub(super) fn failed(id: Option<RequestId>, e: &ChatError) -> Self {
        let frame = error_frame(id, e);
        let strikes = u32::from(crate::edge::is_client_fault(e.kind()));
        Self { frames: vec![frame], strikes, ..Self::default() }
    }

    /// A chat of a `hello` failed: its error names the chat, so the client
    /// knows which catch-up ended.
    pub(super) fn push_failed_chat(&mut self, id: Option<RequestId>, chat: ChatNumber, e: &ChatError) {
        let mut failed = Self::failed(id, e);
        for frame in &mut failed.frames {
            if let ServerFrame::Error { chat: named, .. } = frame {
                *named = Some(chat);
            }
        }
        self.frames.extend(failed.frames);
        self.strikes += failed.strikes;
    }
}

/// What a request's first step leaves to do.
pub(super) enum Handled {
    /// Nothing: its answers.
    Done(Answers),
    /// A send answered without being numbered (refused, or a repeated key):
    /// the answer goes after those of the session's sends still in flight.
    SendAnswered(Answers),
    /// A numbered send (request `id`): persisted alongside the session's
    /// other sends, then published and acked in the order they came.
    Persist(Option<RequestId>, Box<Numbered>),
}

impl From<Answers> for Handled {
    fn from(answers: Answers) -> Self {
        Self::Done(answers)
    }
}

/// What to do with a client text frame.
pub(super) enum Step {
    /// Answer at once (a frame that could not be decoded).
    Answer(Answers),
    /// A `hello`: its catch-up is written before any more live traffic.
    Hello(Option<RequestId>, Vec<Resume>),
    /// A request that runs while the session keeps delivering live traffic.
    Request(ClientFrame),
}

/// Decodes a client text frame into what to do with it.
pub(super) fn step(text: &str) -> Step {
    let decoded = protocol::decode(text);
    let kind = decoded.as_ref().map_or("invalid", ClientFrame::kind);
    crate::metrics::metrics().frames_in.with_label_values(&[kind]).inc();
    match decoded {
        Ok(ClientFrame::Hello { id, resume }) => Step::Hello(id, resume),
        Ok(frame) => Step::Request(frame),
        Err((e, id)) => Step::Answer(Answers::bad(&e, id)),
    }
}

impl Session {
    /// Handles a request (any frame but `hello`); a send only up to its number.
    pub(super) async fn on_request(&self, frame: ClientFrame) -> Handled {
        match frame {
            ClientFrame::Send { id, chat, body, client_msg_id, recipients, reply_to, attachments } => {
                let request = SendRequest {
                    target: match (chat, recipients) {
                        (Some(chat), _) => Target::Chat(chat),
                        // `decode` checked that every recipient parses.
                        (None, Some(users)) => {
                            Target::Recipients(users.iter().filter_map(|u| UserId::parse(u).ok()).collect())
                        }
                        (None, None) => {
                            let bad = Answers::bad(&invalid("send", "give `chat` or `recipients`"), id);
                            return Handled::SendAnswered(bad);
                        }
                    },
                    body,
                    client_msg_id: Some(client_msg_id),
                    reply_to,
                    attachments: attachments.unwrap_or_default(),
                };
                self.number_send(id, request).await
            }
            other => self.answer_request(other).await.into(),
        }
    }

    /// A send's first step: the user's send bucket, then its number.
    async fn number_send(&self, id: Option<RequestId>, request: SendRequest) -> Handled {
        if let Err(refused) = self.state.limits.send(&self.app.id, &self.user) {
            crate::metrics::metrics().rate_limited.with_label_values(&["send"]).inc();
            let frame = ServerFrame::Error {
                id,
                chat: None,
                code: "rate_limited",
                message: "too many sends".into(),
                retry_after_ms: Some(refused.retry_after_ms),
            };
            return Handled::SendAnswered(Answers {
                frames: vec![frame],
                strikes: 0,
                refused_send: Some(refused),
            });
        }
        let author = Author::User(self.user.clone());
        match self.state.chat.number_send(&self.app, &author, request, Some(self.id)).await {
            Ok(Staged::Numbered(numbered)) => Handled::Persist(id, numbered),
            Ok(Staged::Answered(sent)) => {
                Handled::SendAnswered(Answers::one(ServerFrame::Ack { id, chat: sent.chat, seq: sent.seq }))
            }
            Err(e) => Handled::SendAnswered(Answers::failed(id, &e)),
        }
    }

    /// Answers a request that is not a send.
    async fn answer_request(&self, frame: ClientFrame) -> Answers {
        let (app, user) = (&self.app, &self.user);
        match frame {
            // `on_request` takes sends.
            ClientFrame::Send { id, .. } => Answers::bad(&invalid("send", "unexpected"), id),
            ClientFrame::Sync(request) => self.sync(request).await,
            // `step` routes `hello` to `Session::hello`.
            ClientFrame::Hello { id, .. } => Answers::bad(&invalid("hello", "unexpected"), id),
            ClientFrame::Typing { id, chat } => {
                if !self.state.limits.typing(&app.id, user, chat) {
                    crate::metrics::metrics().rate_limited.with_label_values(&["typing"]).inc();
                    return Answers::default();
                }
                match self.state.chat.typing(&app.id, user, chat).await {
                    Ok(()) => Answers::default(),
                    Err(e) => Answers::failed(id, &e),
                }
            }
            ClientFrame::Delivered { id, chat, seq } => {
                self.receipt(id, chat, ReceiptKind::Delivered, seq).await
            }
            ClientFrame::Read { id, chat, seq } => self.receipt(id, chat, ReceiptKind::Read, seq).await,
            ClientFrame::Edit { id, chat, seq, body } => {
                let author = Author::User(user.clone());
                match self.state.chat.edit_message(&app.id, &author, (chat, seq), body, Some(self.id)).await {
                    Ok(_) => Answers::one(ServerFrame::Ack { id, chat, seq }),
                    Err(e) => Answers::failed(id, &e),
                }
            }
            ClientFrame::Delete { id, chat, seq } => {
                let author = Author::User(user.clone());
                match self.state.chat.delete_message(&app.id, &author, (chat, seq), Some(self.id)).await {
                    Ok(_) => Answers::one(ServerFrame::Ack { id, chat, seq }),
                    Err(e) => Answers::failed(id, &e),
                }
            }
            ClientFrame::Upload { id, chat, name, content_type, size } => {
                let author = Author::User(user.clone());
                let new = NewUpload { name, content_type, size };
                match self.state.chat.create_upload(&app.id, &author, chat, new).await {
                    Ok(upload) => Answers::one(ServerFrame::UploadReady {
                        id,
                        attachment: UploadOut {
                            id: upload.id,
                            upload_url: upload.upload_url,
                            expires_at: upload.expires_at,
                        },
                    }),
                    Err(e) => Answers::failed(id, &e),
                }
            }
            ClientFrame::React { id, chat, seq, emoji } => self.react(id, (chat, seq), &emoji, true).await,
            ClientFrame::Unreact { id, chat, seq, emoji } => self.react(id, (chat, seq), &emoji, false).await,
            ClientFrame::AddMembers { .. }
            | ClientFrame::RemoveMember { .. }
            | ClientFrame::SetRole { .. }
            | ClientFrame::UpdateChat { .. }
            | ClientFrame::Leave { .. } => self.group(frame).await,
            ClientFrame::Refresh { id, token } => self.refresh(id, &token).await,
            ClientFrame::Search { id, query, chat, page, per_page } => {
                self.search(id, &query, chat, (page.unwrap_or(1), per_page.unwrap_or(20))).await
            }
            ClientFrame::RegisterDevice { .. }
            | ClientFrame::UnregisterDevice { .. }
            | ClientFrame::NotificationSettings { .. } => self.notifications(frame).await,
        }
    }

    /// A page of a chat's history: forward after a position (a window of
    /// numbers), or backward from a number or the newest (counted in messages).
    async fn sync(&self, SyncRequest { id, chat, from, limit }: SyncRequest) -> Answers {
        let (service, app, user, limit) = (&self.state.chat, &self.app.id, &self.user, limit as usize);
        let read = match from {
            SyncFrom::After(after) => {
                service.sync(app, user, chat, after, limit).await.map(|p| (p.items, p.has_more))
            }
            SyncFrom::Before(before) => {
                service.history(app, user, chat, Some(before), limit).await.map(|p| (p.items, p.has_more))
            }
            SyncFrom::Latest => {
                service.history(app, user, chat, None, limit).await.map(|p| (p.items, p.has_more))
            }
        };
        match read {
            Ok((items, has_more)) => Answers::one(ServerFrame::Messages {
                id,
                chat,
                items: items.iter().map(|m| message_out_for(m, user)).collect(),
                has_more,
            }),
            Err(e) => Answers::failed(id, &e),
        }
    }

    /// A device or notification settings request, for the session's own user.
    async fn notifications(&self, frame: ClientFrame) -> Answers {
        let (chat, app, user) = (&self.state.chat, &self.app.id, &self.user);
        match frame {
            ClientFrame::RegisterDevice { id, device_id, provider, token } => {
                let Ok(device) = crate::ids::DeviceId::parse(&device_id) else {
                    return Answers::bad(&invalid("register_device", "`device_id`"), id);
                };
                match chat.put_device(app, user, device, &provider, &token).await {
                    Ok(d) => Answers::one(ServerFrame::DeviceRegistered {
                        id,
                        device_id: d.id.as_str().to_owned(),
                        provider: d.provider.as_str(),
                    }),
                    Err(e) => Answers::failed(id, &e),
                }
            }
            ClientFrame::UnregisterDevice { id, device_id } => {
                let Ok(device) = crate::ids::DeviceId::parse(&device_id) else {
                    return Answers::bad(&invalid("unregister_device", "`device_id`"), id);
                };
                match chat.delete_device(app, user, &device).await {
                    Ok(()) => Answers::one(ServerFrame::DeviceUnregistered { id, device_id }),
                    Err(e) => Answers::failed(id, &e),
                }
            }
            ClientFrame::NotificationSettings { id, email, email_address, push, chats, quiet_hours } => {
                let mut levels = std::collections::BTreeMap::new();
                for (number, level) in chats.iter().flatten() {
                    let (Ok(number), Some(level)) =
                        (number.parse::<u64>(), crate::model::ChatLevel::parse(level))
                    else {
                        return Answers::bad(&invalid("notification_settings", "`chats`"), id);
                    };
                    levels.insert(crate::ids::ChatNumber(number), level);
                }
                let changes = crate::chat::SettingsChanges {
                    email,
                    email_address: email_address.map(|a| a.filter(|a| !a.trim().is_empty())),
                    push,
                    chats: chats.is_some().then_some(levels),
                    quiet_hours: quiet_hours
                        .map(|q| q.map(|q| crate::model::QuietHours { from: q.from, to: q.to, tz: q.tz })),
                };
                let unchanged = changes.email.is_none()
                    && changes.email_address.is_none()
                    && changes.push.is_none()
                    && changes.chats.is_none()
                    && changes.quiet_hours.is_none();
                let result = if unchanged {
                    chat.notification_settings(app, user).await
                } else {
                    chat.change_notification_settings(app, user, changes).await
                };
                match result {
                    Ok(s) => Answers::one(ServerFrame::NotificationSettings {
                        id,
                        email: s.email,
                        email_address: s.email_address,
                        push: s.push,
                        chats: s.chats.iter().map(|(c, l)| (c.to_string(), l.as_str())).collect(),
                        quiet_hours: s.quiet_hours.map(|q| protocol::QuietHoursIn {
                            from: q.from,
                            to: q.to,
                            tz: q.tz,
                        }),
                    }),
                    Err(e) => Answers::failed(id, &e),
                }
            }
            other => Answers::bad(&invalid(other.kind(), "not a notifications request"), None),
        }
    }

    /// A group request: members, roles, the chat's info, leaving.
    async fn group(&self, frame: ClientFrame) -> Answers {
        let (chat, author, from) = (&self.state.chat, Author::User(self.user.clone()), Some(self.id));
        let app = &self.app.id;
        // `decode` checked every user id and role.
        let parse = |raw: &str| UserId::parse(raw).ok();
        let (id, number, outcome) = match frame {
            ClientFrame::AddMembers { id, chat: number, users } => {
                let users: Vec<UserId> = users.iter().filter_map(|u| parse(u)).collect();
                let done = chat.add_members(app, &author, number, &users, Role::Member, from).await;
                (id, number, done.map(drop))
            }
            ClientFrame::RemoveMember { id, chat: number, user } => {
                let Some(user) = parse(&user) else {
                    return Answers::bad(&invalid("remove_member", "`user`"), id);
                };
                (id, number, chat.remove_from_chat(app, &author, number, &user, from).await)
            }
            ClientFrame::SetRole { id, chat: number, user, role } => {
                let (Some(user), Some(role)) = (parse(&user), Role::parse(&role)) else {
                    return Answers::bad(&invalid("set_role", "`user` or `role`"), id);
                };
                (id, number, chat.set_role(app, &author, number, &user, role, from).await.map(drop))
            }
            ClientFrame::UpdateChat { id, chat: number, name, description, metadata } => {
                let metadata = match metadata {
                    None => None,
                    Some(None) => Some(MetadataChange::Clear),
                    Some(Some(serde_json::Value::Object(keys))) => Some(MetadataChange::Merge(keys)),
                    Some(Some(_)) => return Answers::bad(&invalid("update_chat", "`metadata`"), id),
                };
                let changes = ChatChanges { name, description, metadata };
                (id, number, chat.update_chat(app, &author, number, changes, from).await.map(drop))
            }
            ClientFrame::Leave { id, chat: number, successor } => {
                let successor = successor.as_deref().and_then(parse);
                (id, number, chat.leave(app, &self.user, number, successor.as_ref(), from).await)
            }
            other => return Answers::bad(&invalid(other.kind(), "not a group request"), None),
        };
        match outcome {
            Ok(()) => Answers::one(ServerFrame::GroupAck { id, chat: number }),
            Err(e) => Answers::failed(id, &e),
        }
    }

    /// Searches the user's chats (those it is a member of now).
    async fn search(
        &self,
        id: Option<RequestId>,
        query: &str,
        chat: Option<crate::ids::ChatNumber>,
        (page, per_page): (u32, u32),
    ) -> Answers {
        let parsed = match crate::search::query::parse(query) {
            Ok(parsed) => parsed,
            Err(e) => return Answers::bad(&invalid("search", &format!("`query`: {e}")), id),
        };
        let per_page = per_page as usize;
        let page = crate::model::Page { skip: (page as usize - 1) * per_page, limit: per_page };
        let filters = crate::chat::Filters { chat, ..Default::default() };
        match self.state.chat.search_user(&self.app.id, &self.user, parsed, filters, page).await {
            Ok(results) => Answers::one(ServerFrame::SearchResults {
                id,
                items: results
                    .items
                    .into_iter()
                    .map(|found| protocol::SearchItem {
                        chat: found.message.chat,
                        seq: found.message.number,
                        sender: found.message.sender,
                        body: found.message.body,
                        created_at: found.message.created_at,
                        highlight: found.highlight,
                        reactions: protocol::ReactionOut::of(&found.message.reactions, Some(&self.user)),
                    })
                    .collect(),
                has_more: results.has_more,
            }),
            Err(e) => Answers::failed(id, &e),
        }
    }

    async fn react(
        &self,
        id: Option<RequestId>,
        (chat, seq): (ChatNumber, MessageNumber),
        emoji: &str,
        on: bool,
    ) -> Answers {
        let at = (chat, seq);
        match self.state.chat.react(&self.app.id, &self.user, at, emoji, on, Some(self.id)).await {
            Ok(_) => Answers::one(ServerFrame::Ack { id, chat, seq }),
            Err(e) => Answers::failed(id, &e),
        }
    }

    /// `refresh`: a new access token of the same user (and session) renews the
    /// session's expiry; the session goes on as it was.
    async fn refresh(&self, id: Option<RequestId>, token: &str) -> Answers {
        let who = match self.state.chat.authenticate(token).await {
            Ok(who) => who,
            Err(e) => return Answers::failed(id, &e),
        };
        let same_session = who.session.as_ref().map(|c| &c.id) == self.auth.as_ref().map(|c| &c.id);
        if who.app.id != self.app.id || who.user != self.user || !same_session {
            return Answers::failed(id, &ChatError::Token(crate::auth::TokenError::OtherSession));
        }
        let notice = self.state.chat.sessions_config().expiry_notice_secs;
        self.expiry.renew(who.expires_at, notice, crate::ids::Timestamp::now());
        Answers::one(ServerFrame::Refreshed { id, expires_at: who.expires_at })
    }

    async fn receipt(
        &self,
        id: Option<RequestId>,
        chat: crate::ids::ChatNumber,
        kind: ReceiptKind,
        seq: MessageNumber,
    ) -> Answers {
        match self.state.chat.receipt(&self.app.id, &self.user, chat, kind, seq, Some(self.id)).await {
            Ok(_) if id.is_some() => Answers::one(ServerFrame::Ack { id, chat, seq }),
            Ok(_) => Answers::default(),
            Err(e) => Answers::failed(id, &e),
        }
    }
}

fn invalid(kind: &str, reason: &str) -> FrameError {
    FrameError::Invalid { kind: kind.to_owned(), reason: reason.to_owned() }
}

/// The `error` frame for a failed request: the same code as the REST API's
/// (`crate::edge`'s one table); a retry is announced where one may work.
pub(crate) fn error_frame(id: Option<RequestId>, e: &ChatError) -> ServerFrame {
    let (_, code, message) = crate::edge::explain(e);
    let retry_after_ms = match e.kind() {
        crate::chat::ErrorKind::InFlight => Some(100),
        crate::chat::ErrorKind::Unavailable(_) => Some(1_000),
        _ => None,
    };
    ServerFrame::Error { id, chat: None, code, message, retry_after_ms }
}
