//! The domain: applications, chats, messages and members, and the send path.
//!
//! `ChatService` knows neither HTTP nor the database driver: it speaks ids and
//! records to a [`Store`](crate::store::Store), the numbering, claims and locks of
//! `crate::sequence`, and the [`BatchWriter`].

mod attachments;
mod changes;
mod error;
mod groups;
mod history;
mod implicit;
mod known;
mod notices;
mod notifications;
mod reactions;
mod receipts;
mod search;
mod send;
mod sessions;

use crate::auth::{self, JwksVerifier, SigningSecret, TokenError};
use crate::cache::{AppsCache, MembersCache, RecentCache};
use crate::delivery::Fabric;
use crate::ids::{AppId, AppToken, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Application, Chat, Member, Message, MessageRange, Metadata, Page, Role, UserGroups};
use crate::sequence::{Claims, Locks, Numbering};
use crate::store::{BatchWriter, DynStore};

pub use attachments::{MAX_ATTACHMENT_NAME, NewUpload};
pub use error::{ChatError, ErrorKind, Missing, Refusal, Service};
pub use groups::{ChatChanges, MetadataChange, NewChat, check_description, check_metadata};
pub use history::{CatchUp, HistoryPage};
use known::{DirectChats, KnownChats};
pub use notifications::SettingsChanges;
pub use search::{Filters, Found, Search};
pub use send::{Author, Numbered, Persisted, SendRequest, Sent, Staged, Target};
pub use sessions::{ClientInfo, Issued, NewSession, SessionView};

/// Every member of a chat, for fan-out.
const ALL: Page = Page { skip: 0, limit: usize::MAX };

/// An application with its chat count.
#[derive(Clone, Debug)]
pub struct ApplicationView {
    /// The application.
    pub app: Application,
    /// Chat numbers used so far.
    pub chats_count: u64,
}

/// A chat with its message count.
#[derive(Clone, Debug)]
pub struct ChatView {
    /// The chat.
    pub chat: Chat,
    /// Message numbers used so far.
    pub messages_count: u64,
}

/// What an update of an application changes (`None`: leave as is).
#[derive(Clone, Debug, Default)]
pub struct ApplicationChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new JWKS URL, or `Some(None)` to clear it.
    pub jwks_url: Option<Option<String>>,
    /// Who may put users into new groups.
    pub user_groups: Option<UserGroups>,
    /// A new description, or `Some(None)` to clear it.
    pub description: Option<Option<String>>,
    /// New metadata (replaces the old; empty clears it).
    pub metadata: Option<Metadata>,
}

/// A message the application's backend posts (REST).
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The text.
    pub body: String,
    /// Who sends it, when known.
    pub sender: Option<UserId>,
    /// The `Idempotency-Key`: the same key space as the sender's `client_msg_id`.
    pub idempotency_key: Option<String>,
    /// The message it answers.
    pub reply_to: Option<MessageNumber>,
    /// Uploaded attachments to attach.
    pub attachments: Vec<crate::ids::AttachmentId>,
}

/// Who a verified user token names.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The application (shared with the application cache).
    pub app: std::sync::Arc<Application>,
    /// The user.
    pub user: UserId,
    /// When the token expires (sessions opened with it close then, with 4001).
    pub expires_at: Option<Timestamp>,
    /// The session the token belongs to (an access token a session handed out).
    pub session: Option<crate::auth::SessionClaim>,
}

/// The chat service: one per node, cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    store: DynStore,
    numbers: Numbering,
    claims: Claims,
    locks: Locks,
    writer: BatchWriter,
    known: KnownChats,
    directs: DirectChats,
    members: MembersCache,
    recent: RecentCache,
    apps: AppsCache,
    jwks: JwksVerifier,
    fabric: std::sync::Arc<dyn Fabric>,
    search: Search,
    attachments: crate::attachments::Attachments,
    /// Webhooks (and later push and email): told of what was committed.
    notifier: crate::notify::Notifier,
    /// Registering webhooks.
    webhooks: crate::notify::Webhooks,
    /// `sequence.claim_abandon_ms`.
    claim_abandon_ms: i64,
    /// One change of a group's members or info at a time on this node (see `groups.rs`).
    groups: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// `[sessions]`: token lifetimes.
    sessions: crate::auth::SessionsConfig,
    /// This node's view of which sessions are live.
    session_cache: sessions::SessionCache,
}

/// The caches a [`ChatService`] uses.
#[derive(Clone)]
pub struct Caches {
    /// Member lists for fan-out.
    pub members: MembersCache,
    /// Recent messages for catch-ups.
    pub recent: RecentCache,
    /// Applications, for token checks and REST requests.
    pub apps: AppsCache,
    /// Keys of applications' identity providers.
    pub jwks: JwksVerifier,
}

/// What a [`ChatService`] is built from (the node's wiring makes each part).
pub struct ChatParts {
    /// The store.
    pub store: DynStore,
    /// Chat and message numbers.
    pub numbers: Numbering,
    /// Idempotency claims.
    pub claims: Claims,
    /// Short cluster-wide locks.
    pub locks: Locks,
    /// The batch writer every message goes through.
    pub writer: BatchWriter,
    /// The caches.
    pub caches: Caches,
    /// Delivery to live sessions, on this node and others.
    pub fabric: std::sync::Arc<dyn Fabric>,
    /// `sequence.claim_abandon_ms`.
    pub claim_abandon_ms: u64,
    /// The search index.
    pub search: Search,
    /// Attachment files.
    pub attachments: crate::attachments::Attachments,
    /// Told of what was committed (`Notifier::off()` tells no one).
    pub notifier: crate::notify::Notifier,
    /// Registering webhooks.
    pub webhooks: crate::notify::Webhooks,
    /// `[sessions]`: token lifetimes.
    pub sessions: crate::auth::SessionsConfig,
}

impl ChatService {
    /// A service over these parts.
    pub fn new(parts: ChatParts) -> Self {
        let ChatParts {
            store,
            numbers,
            claims,
            locks,
            writer,
            caches,
            fabric,
            claim_abandon_ms,
            search,
            attachments,
            notifier,
            webhooks,
            sessions,
        } = parts;
        let Caches { members, recent, apps, jwks } = caches;
        Self {
            claim_abandon_ms: i64::try_from(claim_abandon_ms).unwrap_or(i64::MAX),
            store,
            numbers,
            claims,
            locks,
            writer,
            known: KnownChats::default(),
            directs: DirectChats::default(),
            members,
            recent,
            apps,
            jwks,
            fabric,
            search,
            groups: std::sync::Arc::default(),
            attachments,
            notifier,
            webhooks,
            sessions,
            session_cache: sessions::SessionCache::default(),
        }
    }

    /// `[sessions]`, for the gateway's expiry notices.
    pub fn sessions_config(&self) -> &crate::auth::SessionsConfig {
        &self.sessions
    }

    /// The store, for health checks.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// The fabric of nodes, for sessions.
    pub fn fabric(&self) -> &std::sync::Arc<dyn Fabric> {
        &self.fabric
    }

    /// Creates an application with a fresh token.
    pub async fn create_application(
        &self,
        name: String,
        description: Option<String>,
        metadata: Metadata,
    ) -> Result<ApplicationView, ChatError> {
        description.as_deref().map(check_description).transpose()?;
        check_metadata(&metadata)?;
        let now = Timestamp::now();
        let app = Application {
            id: AppId::generate(),
            token: AppToken::generate(),
            name,
            secret: SigningSecret::generate(),
            jwks_url: None,
            user_groups: UserGroups::Open,
            created_at: now,
            updated_at: now,
            description,
            metadata,
        };
        self.numbers.init_app(&app.id).await?;
        self.store.insert_application(&app).await?;
        Ok(ApplicationView { app, chats_count: 0 })
    }

    /// Finds an application by token, or `ApplicationNotFound`.
    pub async fn application(&self, token: &AppToken) -> Result<Application, ChatError> {
        let app = match self.apps.by_token(token) {
            Some(app) => Application::clone(&app),
            None => {
                let seen = self.apps.epoch();
                let app =
                    self.store.application_by_token(token).await?.ok_or(ChatError::ApplicationNotFound)?;
                Application::clone(&self.apps.put(seen, app))
            }
        };
        // The request's span names the application by its public id, never its token.
        tracing::Span::current().record("app", app.id.as_str());
        Ok(app)
    }

    /// An application by its internal id, from the cache when fresh.
    pub(crate) async fn application_by_id(
        &self,
        id: &AppId,
    ) -> Result<Option<std::sync::Arc<Application>>, ChatError> {
        if let Some(app) = self.apps.by_id(id) {
            return Ok(Some(app));
        }
        let seen = self.apps.epoch();
        Ok(self.store.application_by_id(id).await?.map(|app| self.apps.put(seen, app)))
    }

    /// Forgets a cached application (another node rotated its secret).
    pub fn forget_application(&self, app: &AppId) {
        self.apps.forget(app);
    }

    /// An application with its chat count.
    pub async fn application_view(&self, token: &AppToken) -> Result<ApplicationView, ChatError> {
        let app = self.application(token).await?;
        let chats_count = self.numbers.chats_count(&app.id).await?;
        Ok(ApplicationView { app, chats_count })
    }

    /// Changes what `changes` names of an application.
    pub async fn update_application(
        &self,
        token: &AppToken,
        changes: ApplicationChanges,
    ) -> Result<ApplicationView, ChatError> {
        let ApplicationChanges { name, jwks_url, user_groups, description, metadata } = changes;
        if let Some(Some(url)) = &jwks_url {
            self.jwks.check_url(url).map_err(ChatError::Invalid)?;
        }
        if let Some(Some(description)) = &description {
            check_description(description)?;
        }
        if let Some(metadata) = &metadata {
            check_metadata(metadata)?;
        }
        let mut app = self.application(token).await?;
        if let Some(name) = name {
            app.name = name;
        }
        if let Some(jwks_url) = jwks_url {
            app.jwks_url = jwks_url;
        }
        if let Some(user_groups) = user_groups {
            app.user_groups = user_groups;
        }
        if let Some(description) = description {
            app.description = description;
        }
        if let Some(metadata) = metadata {
            app.metadata = metadata;
        }
        app.updated_at = Timestamp::now().max(app.created_at);
        self.store.update_application(&app).await?;
        self.apps.forget(&app.id);
        let chats_count = self.numbers.chats_count(&app.id).await?;
        Ok(ApplicationView { app, chats_count })
    }

    /// Replaces an application's signing secret; tokens signed with the old
    /// one stop working. Returns the application and its new secret.
    pub async fn rotate_secret(&self, token: &AppToken) -> Result<Application, ChatError> {
        let mut app = self.application(token).await?;
        app.secret = SigningSecret::generate();
        app.updated_at = Timestamp::now().max(app.created_at);
        self.store.update_application(&app).await?;
        self.apps.forget(&app.id);
        // Sessions opened with old tokens close (4001), on every node, and
        // reconnect with new ones; every node forgets the old secret.
        self.fabric.revoke(&app.id).await;
        Ok(app)
    }

    /// Mints a user token (HS256 JWT) valid for `ttl_seconds`; returns it and its expiry.
    pub async fn mint_user_token(
        &self,
        token: &AppToken,
        user: &UserId,
        ttl_seconds: u64,
    ) -> Result<(String, Timestamp), ChatError> {
        let app = self.application(token).await?;
        Ok(auth::mint(&app.secret, &app.id, user, Timestamp::now(), ttl_seconds)?)
    }

    /// Checks a user token: signed by its application's current secret, not expired.
    pub async fn authenticate(&self, jwt: &str) -> Result<Authenticated, ChatError> {
        let claimed = auth::inspect(jwt)?;
        let app = self.application_by_id(&claimed.app).await?.ok_or(TokenError::UnknownApplication)?;
        let (user, session) = if claimed.hmac {
            let verified = auth::verify_claims(jwt, &app.id, &app.secret)?;
            (verified.user, verified.session)
        } else {
            // RS256/ES256: only from the application's own identity provider.
            let url = app.jwks_url.as_deref().ok_or(TokenError::UnknownKey)?;
            (self.jwks.verify(url, jwt, &app.id).await?, None)
        };
        // A session's access token: refused once the session is revoked.
        if let Some(claim) = &session {
            self.check_session(&app.id, &user, claim).await?;
        }
        let expires_at = claimed.exp.map(|exp| Timestamp(exp.saturating_mul(1000)));
        Ok(Authenticated { app, user, expires_at, session })
    }

    /// Lists an application's chats.
    pub async fn chats(&self, token: &AppToken, page: Page) -> Result<Vec<ChatView>, ChatError> {
        let app = self.application(token).await?;
        let chats = self.store.chats(&app.id, page).await?;
        self.with_counts(&app.id, chats).await
    }

    /// One chat of an application.
    pub async fn chat(&self, token: &AppToken, number: ChatNumber) -> Result<ChatView, ChatError> {
        let app = self.application(token).await?;
        let chat = self.store.chat(&app.id, number).await?.ok_or(ChatError::ChatNotFound)?;
        let mut views = self.with_counts(&app.id, vec![chat]).await?;
        views.pop().ok_or(ChatError::ChatNotFound)
    }

    async fn with_counts(&self, app: &AppId, chats: Vec<Chat>) -> Result<Vec<ChatView>, ChatError> {
        let numbers: Vec<_> = chats.iter().map(|c| c.number).collect();
        let counts = self.numbers.messages_counts(app, &numbers).await?;
        Ok(chats
            .into_iter()
            .zip(counts)
            .map(|(chat, messages_count)| ChatView { chat, messages_count })
            .collect())
    }

    /// Fails with `ChatNotFound` unless the chat exists.
    async fn ensure_chat(&self, app: &AppId, chat: ChatNumber) -> Result<(), ChatError> {
        if self.known.contains(app, chat) {
            return Ok(());
        }
        self.store.chat(app, chat).await?.ok_or(ChatError::ChatNotFound)?;
        self.known.insert(app, chat);
        Ok(())
    }

    /// Posts a message as the application's backend, through the one send
    /// path; returns it once persisted. A retry with the same key returns the
    /// stored message; the same key with a different chat, body or `reply_to`
    /// is `KeyReused`.
    pub async fn post_message(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        new: NewMessage,
    ) -> Result<Message, ChatError> {
        let app = self.application(token).await?;
        let NewMessage { body, sender, idempotency_key, reply_to, attachments } = new;
        let request = SendRequest {
            target: Target::Chat(chat),
            body: body.clone(),
            client_msg_id: idempotency_key,
            reply_to,
            attachments: attachments.clone(),
        };
        let sent = self.send(&app, &Author::Backend(sender), request, None).await?;
        let message = match sent.message {
            Some(message) => message,
            // A committed claim: its message is stored (committed after the write).
            None => self.store.message(&app.id, sent.chat, sent.seq).await?.ok_or(ChatError::InFlight)?,
        };
        let same_files = message.attachments.iter().map(|f| &f.id).eq(attachments.iter());
        if sent.duplicate
            && (message.chat != chat || message.body != body || message.reply_to != reply_to || !same_files)
        {
            return Err(ChatError::KeyReused);
        }
        Ok(self.with_url(message).await)
    }

    /// Lists a chat's messages, newest first.
    pub async fn messages(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        range: MessageRange,
    ) -> Result<Vec<Message>, ChatError> {
        let app = self.application(token).await?;
        self.ensure_chat(&app.id, chat).await?;
        // The newest page, the one every chat screen opens with, from the recent cache when it holds it.
        if range.before.is_none()
            && range.after.is_none()
            && range.page.skip == 0
            && let Some(mut items) = self.recent.newest(&app.id, chat, range.page.limit).await
        {
            self.with_urls(&mut items).await;
            return Ok(items);
        }
        let mut items = self.store.messages(&app.id, chat, range).await?;
        self.with_urls(&mut items).await;
        Ok(items)
    }

    /// One message of a chat.
    pub async fn message(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Message, ChatError> {
        let app = self.application(token).await?;
        self.ensure_chat(&app.id, chat).await?;
        let message = self.store.message(&app.id, chat, number).await?.ok_or(ChatError::MessageNotFound)?;
        Ok(self.with_url(message).await)
    }

    /// Makes `user` a member of a group as the backend (idempotent): as
    /// `role` when given (a member's role changes to it), else a new member
    /// joins as `member` and a member keeps their role. Returns the member.
    pub async fn put_member(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        user: &UserId,
        role: Option<Role>,
    ) -> Result<Member, ChatError> {
        let app = self.application(token).await?;
        let backend = Author::Backend(None);
        let added = self.add_members(
            &app.id,
            &backend,
            chat,
            std::slice::from_ref(user),
            role.unwrap_or_default(),
            None,
        );
        added.await?;
        match role {
            Some(role) => self.set_role(&app.id, &backend, chat, user, role, None).await,
            None => self.store.member(&app.id, chat, user).await?.ok_or(ChatError::MemberNotFound),
        }
    }

    /// Removes a member from a group as the backend; `MemberNotFound` if it was not one.
    pub async fn remove_member(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<(), ChatError> {
        let app = self.application(token).await?;
        self.remove_from_chat(&app.id, &Author::Backend(None), chat, user, None).await
    }

    /// Changes a chat's info as the backend.
    pub async fn patch_chat(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        changes: ChatChanges,
    ) -> Result<ChatView, ChatError> {
        let app = self.application(token).await?;
        let chat = self.update_chat(&app.id, &Author::Backend(None), chat, changes, None).await?;
        let mut views = self.with_counts(&app.id, vec![chat]).await?;
        views.pop().ok_or(ChatError::ChatNotFound)
    }

    /// Lists a chat's members.
    pub async fn members(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        page: Page,
    ) -> Result<Vec<Member>, ChatError> {
        let app = self.application(token).await?;
        self.ensure_chat(&app.id, chat).await?;
        Ok(self.store.members(&app.id, chat, page).await?)
    }

    /// Lists the chats a user is a member of.
    pub async fn user_chats(
        &self,
        token: &AppToken,
        user: &UserId,
        page: Page,
    ) -> Result<Vec<ChatView>, ChatError> {
        let app = self.application(token).await?;
        let numbers = self.store.user_chats(&app.id, user, page).await?;
        let mut chats = Vec::with_capacity(numbers.len());
        for number in numbers {
            if let Some(chat) = self.store.chat(&app.id, number).await? {
                chats.push(chat);
            }
        }
        self.with_counts(&app.id, chats).await
    }
}
