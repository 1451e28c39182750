//! The one send path, for WebSocket sends and REST posts alike: authorize,
//! deduplicate, number, persist, cache, fan out.

use crate::cache::members::{MembersCache, contains};
use crate::chat::{ALL, ChatError, ChatService};
use crate::delivery::SessionId;
use crate::delivery::{Audience, Event};
use crate::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Application, Message};
use crate::sequence::{Claim, IdempotencyKey, claim_numbered};

/// Where a message goes: a chat, or users (the chat is found or created).
#[derive(Clone, Debug)]
pub enum Target {
    /// A chat the sender is a member of.
    Chat(ChatNumber),
    /// The direct chat with one user, or a new group with several.
    Recipients(Vec<UserId>),
}

/// Who sends a message, which decides what it may do.
#[derive(Clone, Debug)]
pub enum Author {
    /// A user from one of their sessions: a member of the chat it names, or
    /// sending to recipients.
    User(UserId),
    /// The application's backend over REST, trusted by the application's
    /// token: into an existing chat, as any sender or none, no membership needed.
    Backend(Option<UserId>),
}

impl Author {
    /// The sender the message shows, and whose idempotency keys it uses
    /// (`None`: the backend's own key space).
    fn sender(&self) -> Option<&UserId> {
        match self {
            Author::User(user) => Some(user),
            Author::Backend(sender) => sender.as_ref(),
        }
    }
}

/// A message to send.
#[derive(Clone, Debug)]
pub struct SendRequest {
    /// Where it goes.
    pub target: Target,
    /// The text.
    pub body: String,
    /// The sender's idempotency key (`client_msg_id`, or REST's
    /// `Idempotency-Key`); a REST post without one is not deduplicated.
    pub client_msg_id: Option<String>,
    /// The message it answers: it must be stored in the same chat.
    pub reply_to: Option<MessageNumber>,
    /// Uploaded attachments of the same chat to attach (none attached elsewhere).
    pub attachments: Vec<crate::ids::AttachmentId>,
}

/// The outcome of a send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The chat.
    pub chat: ChatNumber,
    /// The message's number.
    pub seq: MessageNumber,
    /// This key was sent before: nothing new was stored.
    pub duplicate: bool,
    /// The message, when this send holds it (it stored it, or delivered a
    /// stored one whose fan-out never ran); a repeated ack has only its number.
    pub message: Option<Message>,
}

/// Where a send stands after its first step.
#[derive(Debug)]
pub enum Staged {
    /// Its key was sent before: the answer, with nothing new to persist.
    Answered(Box<Sent>),
    /// Numbered: [`persist`](ChatService::persist) it next.
    Numbered(Box<Numbered>),
}

/// A send numbered (its key claimed, its attachments attached), not yet persisted.
#[derive(Debug)]
pub struct Numbered {
    message: Message,
    claimed: Option<(IdempotencyKey, Claim)>,
    from: Option<SessionId>,
}

/// A send persisted, its claim still to mark and its fan-out still to do:
/// [`publish`](ChatService::publish) it.
#[derive(Debug)]
pub struct Persisted {
    message: Message,
    claimed: Option<(IdempotencyKey, Claim)>,
    from: Option<SessionId>,
}

/// Why the backend cannot send to recipients.
const BACKEND_RECIPIENTS: &str = "the application's backend posts into a chat, not to recipients";

/// How long a retry waits for the first send's commit.
const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How often it looks.
const PENDING_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// The outcome of claiming a key.
enum Claimed {
    /// This send owns the key (taking over an abandoned claim with this chat, if any).
    Won {
        /// The chat an abandoned first try had found or made.
        abandoned_chat: Option<ChatNumber>,
    },
    /// The first send with this key is persisted: its ack.
    Done(Box<Sent>),
}

/// What a retry makes of an earlier claim.
enum Settled {
    /// The first send is persisted: repeat its ack.
    Sent(Sent),
    /// The first send's node died after persisting but before marking its
    /// claim, so before its fan-out: deliver it now, then repeat the ack.
    Recovered(Message),
    /// The first send failed and dropped its claim.
    Vanished,
    /// The first send's node died before persisting: take the claim over.
    Abandoned,
}

impl ChatService {
    /// The members of `chat`, sorted by user id, from the cache when fresh.
    pub(super) async fn member_list(
        &self,
        app: &AppId,
        chat: ChatNumber,
    ) -> Result<crate::cache::members::Members, ChatError> {
        if let Some((members, refresh)) = self.members.get_or_refresh(app, chat) {
            if refresh {
                // Served as it is; read again behind this send.
                let (store, cache, app) = (self.store.clone(), self.members.clone(), app.clone());
                tokio::spawn(async move {
                    if let Err(e) = read_members(&store, &cache, &app, chat).await {
                        tracing::warn!(error = %e, "cannot refresh a chat's members");
                    }
                });
            }
            return Ok(members);
        }
        Ok(read_members(&self.store, &self.members, app, chat).await?)
    }

    /// The members of `chat` (cached), for delivering what another node sent.
    pub async fn members_of(
        &self,
        app: &AppId,
        chat: ChatNumber,
    ) -> Result<crate::cache::members::Members, ChatError> {
        self.member_list(app, chat).await
    }

    /// Forgets the cached members of `chat` (they changed through another node).
    pub fn forget_members(&self, app: &AppId, chat: ChatNumber) {
        self.members.invalidate(app, chat);
    }

    /// Fails with `NotAMember` unless `user` is a member of `chat`.
    pub(super) async fn ensure_member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<(), ChatError> {
        self.ensure_chat(app, chat).await?;
        if let Some(members) = self.members.get(app, chat)
            && contains(&members, user)
        {
            return Ok(());
        }
        if self.store.is_member(app, chat, user).await? { Ok(()) } else { Err(ChatError::NotAMember) }
    }

    /// Caches and delivers a persisted message to the chat's members;
    /// returns it with its download URLs signed (once: the event carries
    /// them to every node, and the sender's answer shows the same).
    pub(super) async fn fan_out(&self, message: Message, except: Option<SessionId>) -> Message {
        // Cached before delivered (and unsigned: URLs are never stored): a
        // catch-up that starts after a recipient missed the live frame finds
        // the message (see `catch_up`).
        self.recent.push(std::slice::from_ref(&message)).await;
        let members = self.member_list(&message.app, message.chat).await;
        // The push gatherer takes the members read here: it reads none itself.
        self.notify_created(&message, members.as_ref().ok().cloned());
        let message = self.with_url(message).await;
        match members {
            Ok(members) => {
                let audience = Audience::Chat { chat: message.chat, members, except_user: None };
                let event = Event::Message(message.clone());
                self.fabric.deliver(&message.app, &event, &audience, except).await;
            }
            // The message is persisted: members catch up with `hello`/`sync`.
            Err(e) => tracing::warn!(error = %e, "cannot read members for fan-out"),
        }
        message
    }

    /// Sends a message by `author` (from its session `from`, if any);
    /// returns once persisted. Every message goes this way: claim its key,
    /// number it, persist it, confirm the claim, fan it out. The three steps
    /// ([`number_send`](Self::number_send), [`persist`](Self::persist),
    /// [`publish`](Self::publish)) are public so that a session can pipeline
    /// its sends: numbered one at a time in the order they came, persisted
    /// together, published in order.
    pub async fn send(
        &self,
        app: &Application,
        author: &Author,
        request: SendRequest,
        from: Option<SessionId>,
    ) -> Result<Sent, ChatError> {
        match self.number_send(app, author, request, from).await? {
            Staged::Answered(sent) => Ok(*sent),
            Staged::Numbered(numbered) => Ok(self.publish(self.persist(*numbered).await?).await),
        }
    }

    /// A send's first step: authorize, claim its key, find or make its chat,
    /// draw its number. A key sent before is answered here.
    pub async fn number_send(
        &self,
        app: &Application,
        author: &Author,
        request: SendRequest,
        from: Option<SessionId>,
    ) -> Result<Staged, ChatError> {
        let named = match (author, &request.target) {
            (Author::User(user), Target::Chat(chat)) => {
                self.ensure_member(&app.id, *chat, user).await?;
                Some(*chat)
            }
            (Author::Backend(_), Target::Chat(chat)) => {
                self.ensure_chat(&app.id, *chat).await?;
                Some(*chat)
            }
            (Author::User(_), Target::Recipients(_)) => None,
            (Author::Backend(_), Target::Recipients(_)) => {
                return Err(ChatError::Invalid(BACKEND_RECIPIENTS));
            }
        };
        let Some(id) = request.client_msg_id.clone() else {
            return self.number_claimed(app, author, request, from, None, named).await;
        };
        let key = (app.id.clone(), author.sender().cloned(), id);
        // The common send (a named chat, nothing to check first) claims its
        // key and draws its number in one round trip.
        if let Some(chat) = named
            && request.reply_to.is_none()
            && request.attachments.is_empty()
            && let Some(claim) = claim_numbered(&self.numbers, &self.claims, &key, chat).await?
        {
            let message = Self::new_message(app, author, request, chat, claim.seq, Vec::new());
            return Ok(Staged::Numbered(Box::new(Numbered { message, claimed: Some((key, claim)), from })));
        }
        // The key is claimed before anything else happens, so that a retry
        // racing the first send waits for it instead of creating a second chat.
        let placeholder = Claim::pending(named.unwrap_or(ChatNumber(0)), MessageNumber(0));
        let known = match self.claim_key(&key, placeholder, from).await? {
            Claimed::Done(sent) => return Ok(Staged::Answered(sent)),
            Claimed::Won { abandoned_chat } => abandoned_chat,
        };
        let outcome =
            self.number_claimed(app, author, request, from, Some((&key, placeholder)), named.or(known)).await;
        if outcome.is_err() {
            // Nothing persisted: a retry with the same key must try again.
            let _ = self.claims.forget(&key).await;
        }
        outcome
    }

    /// Claims `key` with `placeholder`: won (perhaps over an abandoned claim,
    /// whose chat the retry reuses), or the first send's outcome.
    async fn claim_key(
        &self,
        key: &IdempotencyKey,
        placeholder: Claim,
        from: Option<SessionId>,
    ) -> Result<Claimed, ChatError> {
        for _ in 0..2 {
            let Some(earlier) = self.claims.claim(key, placeholder).await? else {
                return Ok(Claimed::Won { abandoned_chat: None });
            };
            match self.settle(key, earlier).await? {
                Settled::Sent(sent) => return Ok(Claimed::Done(Box::new(sent))),
                Settled::Recovered(message) => {
                    tracing::info!(chat = %message.chat, seq = %message.number, "delivering a message whose sender's node stopped before its fan-out");
                    let message = self.fan_out(message, from).await;
                    let sent = Sent {
                        chat: message.chat,
                        seq: message.number,
                        duplicate: true,
                        message: Some(message),
                    };
                    return Ok(Claimed::Done(Box::new(sent)));
                }
                // The first send failed: claim again.
                Settled::Vanished => continue,
                Settled::Abandoned => {
                    if !self.claims.replace(key, earlier, placeholder).await? {
                        return Err(ChatError::InFlight);
                    }
                    let chat = (earlier.chat.get() > 0).then_some(earlier.chat);
                    return Ok(Claimed::Won { abandoned_chat: chat });
                }
            }
        }
        Err(ChatError::InFlight)
    }

    /// The rest of a send's first step once its key is claimed (or it has
    /// none): its chat, its number, its attachments.
    async fn number_claimed(
        &self,
        app: &Application,
        author: &Author,
        request: SendRequest,
        from: Option<SessionId>,
        claimed: Option<(&IdempotencyKey, Claim)>,
        chat: Option<ChatNumber>,
    ) -> Result<Staged, ChatError> {
        let chat = match (chat, &request.target, author) {
            (Some(chat), _, _) => chat,
            (None, Target::Recipients(users), Author::User(sender)) => {
                self.implicit_chat(&app.id, sender, users).await?
            }
            (None, Target::Recipients(_), Author::Backend(_)) => {
                return Err(ChatError::Invalid(BACKEND_RECIPIENTS));
            }
            (None, Target::Chat(chat), _) => *chat,
        };
        // A store read per reply: a number at or below the chat's counter may
        // still be a gap (a failed send, a resumed counter), so only the store
        // knows. Checked before a number is drawn, so a refusal spends none.
        if let Some(reply_to) = request.reply_to
            && self.store.message(&app.id, chat, reply_to).await?.is_none()
        {
            return Err(ChatError::Invalid("`reply_to` names no message of this chat"));
        }
        // Checked before a number is drawn too; claimed for the number after.
        let files = self.check_attachments(&app.id, chat, &request.attachments).await?;
        let seq = self.numbers.next_message(&app.id, chat).await?;
        let claim = Claim::pending(chat, seq);
        if let Some((key, placeholder)) = claimed
            && !self.claims.replace(key, placeholder, claim).await?
        {
            return Err(ChatError::InFlight);
        }
        self.attach_all(&app.id, chat, seq, &files).await?;
        let message = Self::new_message(app, author, request, chat, seq, files);
        let claimed = claimed.map(|(key, _)| (key.clone(), claim));
        Ok(Staged::Numbered(Box::new(Numbered { message, claimed, from })))
    }

    /// The message a numbered send stores.
    fn new_message(
        app: &Application,
        author: &Author,
        request: SendRequest,
        chat: ChatNumber,
        seq: MessageNumber,
        attachments: Vec<crate::model::AttachedFile>,
    ) -> Message {
        Message {
            app: app.id.clone(),
            chat,
            number: seq,
            body: request.body,
            sender: author.sender().cloned(),
            client_msg_id: request.client_msg_id,
            reply_to: request.reply_to,
            created_at: Timestamp::now(),
            edited_at: None,
            deleted_at: None,
            reply_count: 0,
            last_reply_at: None,
            attachments,
            reactions: Default::default(),
        }
    }

    /// A send's second step: persists the numbered message. On failure its
    /// attachments are free again; a retry with its key starts over, unless
    /// the store may have taken the write after all (`write_may_have_landed`).
    pub async fn persist(&self, numbered: Numbered) -> Result<Persisted, ChatError> {
        let Numbered { message, claimed, from } = numbered;
        if let Err(e) = self.writer.write(message.clone()).await {
            self.release(&message.app, message.number, &message.attachments).await;
            if let Some((key, _)) = &claimed
                && !write_may_have_landed(&e)
            {
                let _ = self.claims.forget(key).await;
            }
            return Err(e.into());
        }
        Ok(Persisted { message, claimed, from })
    }

    /// A send's last step: marks its claim committed while it caches and fans
    /// out the persisted message (the two round trips share one), and
    /// updates the thread it answers.
    pub async fn publish(&self, persisted: Persisted) -> Sent {
        let Persisted { message, claimed, from } = persisted;
        // Persisted: from now on a retry gets this ack. A retry before the
        // mark waits for it; if marking fails, a retry finds the message in
        // the store instead (see `settle`).
        let confirm = async {
            if let Some((key, claim)) = &claimed
                && let Err(e) = self.claims.confirm(key, *claim).await
            {
                tracing::warn!(error = %e, "cannot mark an idempotency claim committed");
            }
        };
        let (message, ()) = tokio::join!(self.fan_out(message, from), confirm);
        if let Some(parent) = message.reply_to {
            self.thread_updated(&message.app, message.chat, parent, from).await;
        }
        Sent { chat: message.chat, seq: message.number, duplicate: false, message: Some(message) }
    }

    /// What an earlier claim on a key means for a retry: its ack (once its
    /// message is persisted), nothing (it failed and was dropped), or an
    /// abandoned claim to take over (its sender died before persisting).
    /// A claim still being committed is waited for, briefly.
    async fn settle(&self, key: &IdempotencyKey, mut claim: Claim) -> Result<Settled, ChatError> {
        let deadline = tokio::time::Instant::now() + PENDING_WAIT;
        loop {
            let sent = Sent { chat: claim.chat, seq: claim.seq, duplicate: true, message: None };
            if claim.committed {
                return Ok(Settled::Sent(sent));
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(PENDING_POLL).await;
            match self.claims.recall(key).await? {
                Some(now) => claim = now,
                None => return Ok(Settled::Vanished),
            }
        }
        // Still pending: either its commit is slow, or its node died.
        if let Some(message) = self.store.message(&key.0, claim.chat, claim.seq).await? {
            // Marked first: a second retry racing this one gets the plain ack
            // and the message is delivered once.
            if self.claims.replace(key, claim, Claim { committed: true, ..claim }).await? {
                return Ok(Settled::Recovered(message));
            }
            return Ok(Settled::Sent(Sent {
                chat: claim.chat,
                seq: claim.seq,
                duplicate: true,
                message: Some(message),
            }));
        }
        let age = Timestamp::now().millis().saturating_sub(claim.at);
        // Older than any commit can take (`sequence.claim_abandon_ms`): its node
        // died before the commit.
        if age > self.claim_abandon_ms { Ok(Settled::Abandoned) } else { Err(ChatError::InFlight) }
    }
}

/// Reads the members of `chat` from the store into the cache (unless an
/// invalidation came meanwhile: see [`MembersCache::put`]).
async fn read_members(
    store: &crate::store::DynStore,
    cache: &MembersCache,
    app: &AppId,
    chat: ChatNumber,
) -> Result<crate::cache::members::Members, crate::store::StoreError> {
    let seen = cache.epoch(app, chat);
    let members: crate::cache::members::Members =
        store.members(app, chat, ALL).await?.into_iter().map(|m| m.user).collect();
    cache.put(app, chat, members.clone(), seen);
    Ok(members)
}

/// Whether a failed write may still be in the store: a CQL write that timed
/// out or lost its connection may have been applied. Its claim then stays
/// pending, so that a retry with the key reads the store first (`settle`):
/// it acks the message found there, and takes the key over with a new
/// number only once the claim is older than any commit can take
/// (`sequence.claim_abandon_ms`). Forgetting the claim instead stored such a
/// message twice (tests/faults.rs, Cassandra unreachable under traffic).
fn write_may_have_landed(error: &crate::store::WriteError) -> bool {
    matches!(error, crate::store::WriteError::Store(e) if matches!(**e, crate::store::StoreError::Unavailable(_)))
}
