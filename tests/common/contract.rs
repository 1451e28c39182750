//! The behaviour every [`Store`] backend must show, as checks over `&dyn Store`.
//!
//! Each check works inside a fresh random application, so the checks can run
//! against one shared store, in any order, side by side. A backend's test file
//! calls them, e.g. `contract::applications(&store).await`.

use std::collections::BTreeMap;
use weft::auth::SigningSecret;

use weft::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};
use weft::model::{
    Application, AttachedFile, Attachment, Change, Chat, ChatKind, ChatLevel, Device, DirectPair, EventType,
    Member, Message, MessageRange, MessageVersion, Metadata, NotificationSettings, Page, PushProvider,
    QuietHours, ReadState, ReceiptKind, Role, UserGroups, Webhook,
};
use weft::store::{MESSAGE_BUCKET, Store};

/// Runs every check.
pub async fn all(store: &dyn Store) {
    applications(store).await;
    application_ids(store).await;
    chats(store).await;
    messages_across_buckets(store).await;
    messages_in_sparse_buckets(store).await;
    large_message_batches(store).await;
    edits_and_deletes(store).await;
    threads(store).await;
    attachments(store).await;
    webhooks(store).await;
    notifications(store).await;
    reactions(store).await;
    members(store).await;
    groups(store).await;
    roles(store).await;
    direct_chats(store).await;
    read_state(store).await;
}

fn page(skip: usize, limit: usize) -> Page {
    Page { skip, limit }
}

fn range(before: Option<u64>, after: Option<u64>, skip: usize, limit: usize) -> MessageRange {
    MessageRange {
        before: before.map(MessageNumber),
        after: after.map(MessageNumber),
        page: page(skip, limit),
    }
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// A message whose optional fields vary with its number, so that round trips
/// of present and absent values are both checked.
pub fn message(app: &AppId, chat: u64, number: u64, body: String) -> Message {
    Message {
        app: app.clone(),
        chat: ChatNumber(chat),
        number: MessageNumber(number),
        body,
        sender: (!number.is_multiple_of(3)).then(|| user(&format!("user-{}", number % 7))),
        client_msg_id: number.is_multiple_of(2).then(|| format!("cm-{number}")),
        reply_to: (number.is_multiple_of(5) && number > 1).then(|| MessageNumber(number - 1)),
        created_at: Timestamp(1_700_000_000_000 + number as i64),
        edited_at: None,
        deleted_at: None,
        reply_count: 0,
        last_reply_at: None,
        attachments: Vec::new(),
        reactions: Default::default(),
    }
}

/// Attachment records: kept per application, attached to one message only
/// (a second claim and a claim from another chat lose), released by the
/// message that holds them only, deleted; a message keeps its files and a
/// tombstone none.
pub async fn attachments(store: &dyn Store) {
    let app = AppId::generate();
    let record = |chat: u64, by: Option<&str>| Attachment {
        app: app.clone(),
        id: AttachmentId::generate(),
        chat: ChatNumber(chat),
        name: "photo ✓.png".into(),
        content_type: "image/png".into(),
        size: 1234,
        created_by: by.map(user),
        created_at: Timestamp(1_700_000_000_000),
        message: None,
    };
    let a = record(1, Some("alice"));
    let b = record(1, None);
    store.insert_attachment(&a).await.unwrap();
    store.insert_attachment(&b).await.unwrap();
    assert_eq!(store.attachment(&app, &a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.attachment(&app, &b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(store.attachment(&AppId::generate(), &a.id).await.unwrap(), None, "another application's");
    assert_eq!(store.attachment(&app, &AttachmentId::generate()).await.unwrap(), None);

    let (one, seven) = (ChatNumber(1), MessageNumber(7));
    assert!(!store.attach(&app, &a.id, ChatNumber(2), seven).await.unwrap(), "another chat");
    assert!(!store.attach(&app, &AttachmentId::generate(), one, seven).await.unwrap(), "a missing id");
    assert!(!store.attach(&AppId::generate(), &a.id, one, seven).await.unwrap(), "another application");
    assert!(store.attach(&app, &a.id, one, seven).await.unwrap());
    assert!(!store.attach(&app, &a.id, one, MessageNumber(8)).await.unwrap(), "attached already");
    assert_eq!(store.attachment(&app, &a.id).await.unwrap().unwrap().message, Some(seven));
    store.detach(&app, &a.id, MessageNumber(8)).await.unwrap();
    assert_eq!(store.attachment(&app, &a.id).await.unwrap().unwrap().message, Some(seven), "not its holder");
    store.detach(&app, &a.id, seven).await.unwrap();
    assert_eq!(store.attachment(&app, &a.id).await.unwrap().unwrap().message, None);
    assert!(store.attach(&app, &a.id, one, seven).await.unwrap());

    let mut m = message(&app, 1, 7, "with files".into());
    m.attachments = vec![a.file(), b.file()];
    store.insert_messages(std::slice::from_ref(&m)).await.unwrap();
    let read = store.message(&app, one, seven).await.unwrap().unwrap();
    assert_eq!(read.attachments, vec![a.file(), b.file()]);
    assert!(read.attachments.iter().all(|f: &AttachedFile| f.url.is_none()));
    let listed = store.messages(&app, one, range(None, None, 0, 10)).await.unwrap();
    assert_eq!(listed[0].attachments.len(), 2);
    let Change::Done(tombstone) =
        store.delete_message(&app, one, seven, Timestamp(1_700_000_000_900)).await.unwrap()
    else {
        panic!("not deleted")
    };
    assert!(tombstone.attachments.is_empty());
    assert!(store.message(&app, one, seven).await.unwrap().unwrap().attachments.is_empty());

    store.delete_attachment(&app, &a.id).await.unwrap();
    assert_eq!(store.attachment(&app, &a.id).await.unwrap(), None);
    store.delete_attachment(&app, &a.id).await.unwrap();
    assert!(store.attachment(&app, &b.id).await.unwrap().is_some());
}

/// Webhooks: kept per application and listed by id; an update round-trips
/// every field it overwrites, setting and clearing the optional ones, and
/// keeps `created_at`; a delete says whether there was one, and an update
/// after it brings nothing back.
pub async fn webhooks(store: &dyn Store) {
    let app = AppId::generate();
    // An id that extends `app`'s: a listing of `app` must stop at its own.
    let other = AppId::new(format!("{app}-2"));
    let record = |app: &AppId, events: Vec<EventType>| Webhook {
        app: app.clone(),
        id: WebhookId::generate(),
        url: "https://example.com/hooks/weft?x=1".into(),
        events,
        secret: "whsec_first".into(),
        previous_secret: None,
        previous_until: None,
        created_at: Timestamp(1_700_000_000_000),
        disabled_at: None,
        disabled_reason: None,
    };
    let a = record(&app, vec![EventType::MessageCreated, EventType::UserOnline]);
    let b = record(&app, EventType::ALL.to_vec());
    let c = record(&other, vec![EventType::ReceiptRead]);
    for w in [&a, &b, &c] {
        store.insert_webhook(w).await.unwrap();
    }
    assert_eq!(store.webhook(&app, &a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.webhook(&app, &b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(store.webhook(&other, &c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(store.webhook(&app, &c.id).await.unwrap(), None, "another application's");
    assert_eq!(store.webhook(&other, &a.id).await.unwrap(), None, "another application's");
    assert_eq!(store.webhook(&app, &WebhookId::generate()).await.unwrap(), None);

    let mut mine = vec![a.clone(), b.clone()];
    mine.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(store.webhooks(&app).await.unwrap(), mine);
    assert_eq!(store.webhooks(&other).await.unwrap(), vec![c.clone()]);
    assert_eq!(store.webhooks(&AppId::generate()).await.unwrap(), Vec::new());

    // Every optional field set, the events changed.
    let rotated = Webhook {
        url: "https://example.org/other".into(),
        events: vec![EventType::ChatCreated, EventType::MemberAdded, EventType::MemberRemoved],
        secret: "whsec_second".into(),
        previous_secret: Some("whsec_first".into()),
        previous_until: Some(Timestamp(1_700_000_100_000)),
        disabled_at: Some(Timestamp(1_700_000_200_000)),
        disabled_reason: Some("HTTP 500 ×20 ✓".into()),
        ..a.clone()
    };
    store.update_webhook(&rotated).await.unwrap();
    assert_eq!(store.webhook(&app, &a.id).await.unwrap(), Some(rotated.clone()));
    // And cleared again.
    let cleared = Webhook { events: vec![EventType::MessageDeleted], ..a.clone() };
    store.update_webhook(&cleared).await.unwrap();
    assert_eq!(store.webhook(&app, &a.id).await.unwrap(), Some(cleared.clone()));
    assert_eq!(store.webhook(&app, &b.id).await.unwrap(), Some(b.clone()), "the other one is untouched");
    // What an update does not overwrite.
    let moved = Webhook { created_at: Timestamp(1_800_000_000_000), ..cleared.clone() };
    store.update_webhook(&moved).await.unwrap();
    assert_eq!(store.webhook(&app, &a.id).await.unwrap(), Some(cleared.clone()), "created_at stays");

    assert!(!store.delete_webhook(&other, &a.id).await.unwrap(), "another application's");
    assert!(store.delete_webhook(&app, &a.id).await.unwrap());
    assert!(!store.delete_webhook(&app, &a.id).await.unwrap());
    assert_eq!(store.webhook(&app, &a.id).await.unwrap(), None);
    assert_eq!(store.webhooks(&app).await.unwrap(), vec![b.clone()]);
    store.update_webhook(&rotated).await.unwrap();
    assert_eq!(store.webhook(&app, &a.id).await.unwrap(), None, "an update brings no deleted webhook back");
    assert_eq!(store.webhooks(&app).await.unwrap(), vec![b]);
    assert_eq!(store.webhooks(&other).await.unwrap(), vec![c]);
}

/// Devices and notification settings, per (application, user). Devices are
/// listed by id; registering an id again replaces its provider, token and
/// `updated_at` but keeps `created_at`; a delete says whether there was one.
/// Settings are absent until put, and a put overwrites every field, setting
/// and clearing the optional ones.
pub async fn notifications(store: &dyn Store) {
    let app = AppId::generate();
    // An id that extends `app`'s, and a user whose id extends alice's: a
    // listing must stop at its own.
    let other_app = AppId::new(format!("{app}-2"));
    let (alice, bob) = (user("alice"), user("alice-2"));
    let device = |app: &AppId, user: &UserId, id: &str, provider: PushProvider, at: i64| Device {
        app: app.clone(),
        user: user.clone(),
        id: DeviceId::parse(id).unwrap(),
        provider,
        token: format!("token-of-{id}-{at}"),
        created_at: Timestamp(at),
        updated_at: Timestamp(at),
    };
    let phone = device(&app, &alice, "phone", PushProvider::Fcm, 1_700_000_000_000);
    let laptop = device(&app, &alice, "laptop:firefox", PushProvider::WebPush, 1_700_000_001_000);
    let bobs = device(&app, &bob, "phone", PushProvider::Apns, 1_700_000_002_000);
    let elsewhere = device(&other_app, &alice, "phone", PushProvider::Apns, 1_700_000_003_000);
    for d in [&phone, &laptop, &bobs, &elsewhere] {
        store.put_device(d).await.unwrap();
    }
    assert_eq!(store.devices(&app, &alice).await.unwrap(), vec![laptop.clone(), phone.clone()], "by id");
    assert_eq!(store.devices(&app, &bob).await.unwrap(), vec![bobs.clone()]);
    assert_eq!(store.devices(&other_app, &alice).await.unwrap(), vec![elsewhere.clone()]);
    assert_eq!(store.devices(&app, &user("carol")).await.unwrap(), Vec::new());
    assert_eq!(store.devices(&AppId::generate(), &alice).await.unwrap(), Vec::new());

    // Registered again: a new provider and token, the first created_at.
    let again = Device {
        provider: PushProvider::Apns,
        token: "0123abcd".repeat(8),
        created_at: Timestamp(1_800_000_000_000),
        updated_at: Timestamp(1_800_000_000_000),
        ..phone.clone()
    };
    store.put_device(&again).await.unwrap();
    let kept = Device { created_at: phone.created_at, ..again.clone() };
    assert_eq!(store.devices(&app, &alice).await.unwrap(), vec![laptop.clone(), kept.clone()]);
    assert_eq!(store.devices(&app, &bob).await.unwrap(), vec![bobs.clone()], "another user's");
    assert_eq!(store.devices(&other_app, &alice).await.unwrap(), vec![elsewhere.clone()], "another app's");

    assert!(!store.delete_device(&app, &user("carol"), &phone.id).await.unwrap(), "another user's");
    assert!(store.delete_device(&app, &alice, &phone.id).await.unwrap());
    assert!(!store.delete_device(&app, &alice, &phone.id).await.unwrap());
    assert_eq!(store.devices(&app, &alice).await.unwrap(), vec![laptop.clone()]);
    assert_eq!(store.devices(&app, &bob).await.unwrap(), vec![bobs]);
    assert_eq!(store.devices(&other_app, &alice).await.unwrap(), vec![elsewhere]);
    // Registered after a delete: a new device, with its own created_at.
    store.put_device(&again).await.unwrap();
    assert_eq!(store.devices(&app, &alice).await.unwrap(), vec![laptop, again]);

    // Settings.
    assert_eq!(store.notification_settings(&app, &alice).await.unwrap(), None);
    let full = NotificationSettings {
        app: app.clone(),
        user: alice.clone(),
        email: true,
        email_address: Some("alice+weft@example.com".into()),
        push: false,
        chats: BTreeMap::from([(ChatNumber(3), ChatLevel::Mentions), (ChatNumber(12), ChatLevel::None)]),
        quiet_hours: Some(QuietHours { from: "22:30".into(), to: "07:00".into(), tz: "Europe/Paris".into() }),
        updated_at: Timestamp(1_700_000_000_000),
    };
    store.put_notification_settings(&full).await.unwrap();
    assert_eq!(store.notification_settings(&app, &alice).await.unwrap(), Some(full.clone()));
    assert_eq!(store.notification_settings(&app, &bob).await.unwrap(), None, "another user's");
    assert_eq!(store.notification_settings(&other_app, &alice).await.unwrap(), None, "another app's");
    let mut bobs_settings = NotificationSettings::default_for(&app, &bob);
    bobs_settings.chats.insert(ChatNumber(3), ChatLevel::All);
    store.put_notification_settings(&bobs_settings).await.unwrap();

    // Overwritten with every optional field cleared and no chat named.
    let cleared = NotificationSettings {
        email: false,
        email_address: None,
        push: true,
        chats: BTreeMap::new(),
        quiet_hours: None,
        updated_at: Timestamp(1_700_000_100_000),
        ..full.clone()
    };
    store.put_notification_settings(&cleared).await.unwrap();
    assert_eq!(store.notification_settings(&app, &alice).await.unwrap(), Some(cleared.clone()));
    // And set again.
    store.put_notification_settings(&full).await.unwrap();
    assert_eq!(store.notification_settings(&app, &alice).await.unwrap(), Some(full));
    assert_eq!(store.notification_settings(&app, &bob).await.unwrap(), Some(bobs_settings), "untouched");
}

fn numbers(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.number.get()).collect()
}

async fn list(store: &dyn Store, app: &AppId, chat: u64, range: MessageRange) -> Vec<u64> {
    numbers(&store.messages(app, ChatNumber(chat), range).await.unwrap())
}

/// Paging through `application_ids` with the last id of each page lists
/// every application once.
pub async fn application_ids(store: &dyn Store) {
    let mut mine = Vec::new();
    for i in 0..5 {
        let app = Application {
            id: AppId::generate(),
            token: AppToken::generate(),
            name: format!("listed {i}"),
            secret: SigningSecret::generate(),
            jwks_url: None,
            user_groups: UserGroups::Open,
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_000),
            description: None,
            metadata: Metadata::new(),
        };
        store.insert_application(&app).await.unwrap();
        mine.push(app.id);
    }
    let mut seen = Vec::new();
    let mut after: Option<AppId> = None;
    loop {
        let page = store.application_ids(after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2, "a page is at most its limit");
        let Some(last) = page.last().cloned() else { break };
        seen.extend(page);
        after = Some(last);
    }
    for id in &mine {
        assert_eq!(seen.iter().filter(|s| *s == id).count(), 1, "{id} listed once");
    }
    assert!(store.application_ids(None, 0).await.unwrap().is_empty());
}

/// An edit keeps the old body as a version; a delete leaves a tombstone (the
/// number stays, body and versions go); neither applies to a tombstone or to
/// a number that names no message.
pub async fn edits_and_deletes(store: &dyn Store) {
    let app = AppId::generate();
    let batch: Vec<Message> = (1..=3).map(|n| message(&app, 1, n, format!("body {n}"))).collect();
    store.insert_messages(&batch).await.unwrap();
    let (chat, two) = (ChatNumber(1), MessageNumber(2));
    let t = |ms: i64| Timestamp(1_700_000_100_000 + ms);

    let Change::Done(edited) = store.edit_message(&app, chat, two, "body 2, fixed", t(1)).await.unwrap()
    else {
        panic!("the edit did not apply")
    };
    assert_eq!(
        (edited.body.as_str(), edited.edited_at, edited.deleted_at),
        ("body 2, fixed", Some(t(1)), None)
    );
    assert_eq!(edited.created_at, batch[1].created_at);
    assert_eq!(edited.sender, batch[1].sender);
    assert_eq!(store.message(&app, chat, two).await.unwrap(), Some(edited.clone()));
    let listed = store.messages(&app, chat, range(None, None, 0, 10)).await.unwrap();
    assert_eq!(listed[1], edited, "history shows the edited body");
    store.edit_message(&app, chat, two, "body 2, fixed again", t(2)).await.unwrap();
    assert_eq!(
        store.message_versions(&app, chat, two).await.unwrap(),
        [
            MessageVersion { body: "body 2".into(), written_at: batch[1].created_at, replaced_at: t(1) },
            MessageVersion { body: "body 2, fixed".into(), written_at: t(1), replaced_at: t(2) },
        ]
    );
    assert!(store.message_versions(&app, chat, MessageNumber(1)).await.unwrap().is_empty());

    let Change::Done(tombstone) = store.delete_message(&app, chat, two, t(3)).await.unwrap() else {
        panic!("the delete did not apply")
    };
    assert_eq!((tombstone.body.as_str(), tombstone.deleted_at), ("", Some(t(3))));
    assert!(tombstone.is_deleted());
    assert_eq!(store.message(&app, chat, two).await.unwrap(), Some(tombstone.clone()));
    assert!(store.message_versions(&app, chat, two).await.unwrap().is_empty(), "versions go with the body");
    assert_eq!(
        store.edit_message(&app, chat, two, "back", t(4)).await.unwrap(),
        Change::Deleted(tombstone.clone())
    );
    assert_eq!(
        store.delete_message(&app, chat, two, t(5)).await.unwrap(),
        Change::Deleted(tombstone.clone())
    );
    assert_eq!(store.max_message_number(&app, chat).await.unwrap(), 3, "the number stays taken");
    let listed = numbers(&store.messages(&app, chat, range(None, None, 0, 10)).await.unwrap());
    assert_eq!(listed, [3, 2, 1], "the tombstone keeps its place");

    for missing in [MessageNumber(9), MessageNumber(u64::MAX)] {
        assert_eq!(store.edit_message(&app, chat, missing, "x", t(6)).await.unwrap(), Change::Missing);
        assert_eq!(store.delete_message(&app, chat, missing, t(6)).await.unwrap(), Change::Missing);
        assert!(store.message_versions(&app, chat, missing).await.unwrap().is_empty());
    }
    assert_eq!(store.message(&app, chat, MessageNumber(9)).await.unwrap(), None, "no row was made up");
}

/// A reaction is one per user, message and emoji, read back with the
/// message wherever it is read; adding twice or taking back what is not there
/// changes nothing; a tombstone takes none and drops those it had.
pub async fn reactions(store: &dyn Store) {
    let app = AppId::generate();
    let batch: Vec<Message> = (1..=3).map(|n| message(&app, 1, n, format!("body {n}"))).collect();
    store.insert_messages(&batch).await.unwrap();
    let (chat, two) = (ChatNumber(1), MessageNumber(2));
    let (alice, bob) = (user("alice"), user("bob"));
    let app_ref = &app;
    let react = |emoji: &'static str, who: &UserId, on: bool| {
        let who = who.clone();
        async move {
            match store.set_reaction(app_ref, chat, two, emoji, &who, on).await.unwrap() {
                Change::Done(m) => m,
                other => panic!("the reaction did not apply: {other:?}"),
            }
        }
    };
    let m = react("👍", &alice, true).await;
    assert_eq!((m.reactions.count("👍"), m.body.as_str()), (1, "body 2"));
    react("👍", &bob, true).await;
    react(":party:", &bob, true).await;
    let again = react("👍", &bob, true).await;
    assert_eq!(again.reactions.count("👍"), 2, "a second add by the same user counts once");
    assert!(again.reactions.has("👍", &alice) && again.reactions.has(":party:", &bob));
    assert!(!again.reactions.has(":party:", &alice));

    let stored = store.message(&app, chat, two).await.unwrap().unwrap();
    assert_eq!(stored, again, "read back as written");
    let listed = store.messages(&app, chat, range(None, None, 0, 10)).await.unwrap();
    assert_eq!(listed[1].reactions, again.reactions, "history carries the reactions");
    assert!(
        listed[0].reactions.is_empty() && listed[2].reactions.is_empty(),
        "only on the message reacted to"
    );

    let m = react("👍", &alice, false).await;
    assert_eq!((m.reactions.count("👍"), m.reactions.has("👍", &alice)), (1, false));
    let m = react("👍", &alice, false).await;
    assert_eq!(m.reactions.count("👍"), 1, "taking back what is not there changes nothing");
    let m = react(":party:", &bob, false).await;
    assert_eq!((m.reactions.count(":party:"), m.reactions.kinds()), (0, 1), "an emoji nobody uses is gone");

    let t = Timestamp(1_700_000_100_000);
    let Change::Done(tombstone) = store.delete_message(&app, chat, two, t).await.unwrap() else {
        panic!("the delete did not apply")
    };
    assert!(tombstone.reactions.is_empty(), "a tombstone drops its reactions");
    assert!(store.message(&app, chat, two).await.unwrap().unwrap().reactions.is_empty());
    assert!(matches!(
        store.set_reaction(&app, chat, two, "👍", &alice, true).await.unwrap(),
        Change::Deleted(_)
    ));
    assert!(store.message(&app, chat, two).await.unwrap().unwrap().reactions.is_empty());
    assert_eq!(
        store.set_reaction(&app, chat, MessageNumber(9), "👍", &alice, true).await.unwrap(),
        Change::Missing
    );
    assert_eq!(store.message(&app, chat, MessageNumber(9)).await.unwrap(), None, "no row was made up");
}

/// Replies are listed under their parent, oldest first, and move its count
/// and newest reply time; writing a reply again (a retried batch) counts nothing.
pub async fn threads(store: &dyn Store) {
    let app = AppId::generate();
    let at = |n: u64| Timestamp(1_700_000_000_000 + n as i64 * 1000);
    let msg = |n: u64, reply_to: Option<u64>| Message {
        reply_to: reply_to.map(MessageNumber),
        created_at: at(n),
        ..message(&app, 1, n, format!("m{n}"))
    };
    store.insert_messages(&[msg(1, None)]).await.unwrap();
    store.insert_messages(&[msg(2, Some(1)), msg(3, Some(1))]).await.unwrap();
    store.insert_messages(&[msg(4, Some(2)), msg(3, Some(1))]).await.unwrap();
    let chat = ChatNumber(1);
    let parent = store.message(&app, chat, MessageNumber(1)).await.unwrap().unwrap();
    assert_eq!((parent.reply_count, parent.last_reply_at), (2, Some(at(3))));
    let second = store.message(&app, chat, MessageNumber(2)).await.unwrap().unwrap();
    assert_eq!((second.reply_count, second.last_reply_at), (1, Some(at(4))));
    let listed = store.messages(&app, chat, range(None, None, 0, 10)).await.unwrap();
    assert_eq!(listed[3].reply_count, 2, "history carries the count");
    let app = &app;
    let replies = |parent: u64, after: u64, limit: usize| async move {
        numbers(&store.replies(app, chat, MessageNumber(parent), MessageNumber(after), limit).await.unwrap())
    };
    assert_eq!(replies(1, 0, 10).await, [2, 3]);
    assert_eq!(replies(1, 2, 10).await, [3]);
    assert_eq!(replies(1, 0, 1).await, [2]);
    assert_eq!(replies(2, 0, 10).await, [4]);
    assert!(replies(3, 0, 10).await.is_empty());
    assert!(replies(99, 0, 10).await.is_empty());
    assert_eq!(store.message(app, chat, MessageNumber(3)).await.unwrap().unwrap().reply_count, 0);
}

/// Insert, find by token, update name and updated_at.
pub async fn applications(store: &dyn Store) {
    let app = Application {
        id: AppId::generate(),
        token: AppToken::generate(),
        name: "Acme chat".into(),
        secret: SigningSecret::generate(),
        jwks_url: None,
        user_groups: UserGroups::Open,
        created_at: Timestamp(1_700_000_000_123),
        updated_at: Timestamp(1_700_000_000_123),
        description: None,
        metadata: Metadata::new(),
    };
    store.insert_application(&app).await.unwrap();
    assert_eq!(store.application_by_token(&app.token).await.unwrap(), Some(app.clone()));
    assert_eq!(store.application_by_token(&AppToken::generate()).await.unwrap(), None);

    assert_eq!(store.application_by_id(&app.id).await.unwrap(), Some(app.clone()));
    assert_eq!(store.application_by_id(&AppId::generate()).await.unwrap(), None);

    let renamed = Application {
        name: "Acme ✓ chat".into(),
        secret: SigningSecret::generate(),
        jwks_url: Some("https://idp.example/.well-known/jwks.json".into()),
        user_groups: UserGroups::BackendOnly,
        updated_at: Timestamp(1_700_000_999_000),
        description: Some("the Acme ✓ support chat".into()),
        metadata: object(serde_json::json!({"plan": "pro", "seats": 12, "tags": ["a", "b"]})),
        ..app.clone()
    };
    store.update_application(&renamed).await.unwrap();
    assert_eq!(store.application_by_token(&app.token).await.unwrap(), Some(renamed.clone()));
    assert_eq!(store.application_by_id(&app.id).await.unwrap(), Some(renamed.clone()));
    let cleared = Application {
        jwks_url: None,
        user_groups: UserGroups::Open,
        description: None,
        metadata: Metadata::new(),
        ..renamed
    };
    store.update_application(&cleared).await.unwrap();
    assert_eq!(store.application_by_token(&app.token).await.unwrap(), Some(cleared));
}

/// The direct chat of a pair: one claim wins, from either side, concurrently.
pub async fn direct_chats(store: &dyn Store) {
    let app = AppId::generate();
    let pair = DirectPair::new(user("zoe"), user("adam")).unwrap();
    let same = DirectPair::new(user("adam"), user("zoe")).unwrap();
    assert_eq!(pair, same);
    assert!(DirectPair::new(user("adam"), user("adam")).is_none());
    assert_eq!(store.direct_chat(&app, &pair).await.unwrap(), None);
    let claims = futures::future::join_all(
        (1..=4u64)
            .map(|n| store.claim_direct_chat(&app, if n % 2 == 0 { &pair } else { &same }, ChatNumber(n))),
    )
    .await;
    let winners: Vec<ChatNumber> = claims.into_iter().map(Result::unwrap).collect();
    assert!(winners.iter().all(|w| *w == winners[0]), "{winners:?}");
    assert_eq!(store.direct_chat(&app, &same).await.unwrap(), Some(winners[0]));
    assert_eq!(store.claim_direct_chat(&app, &pair, ChatNumber(99)).await.unwrap(), winners[0]);
    let other = DirectPair::new(user("adam"), user("eve")).unwrap();
    assert_eq!(store.direct_chat(&app, &other).await.unwrap(), None);
    assert_eq!(store.direct_chat(&AppId::generate(), &pair).await.unwrap(), None, "per application");
}

/// Receipt positions move forward only, whatever order they arrive in.
pub async fn read_state(store: &dyn Store) {
    let (app, chat) = (AppId::generate(), ChatNumber(3));
    let (ann, bob) = (user("ann"), user("bob"));
    assert_eq!(store.read_state(&app, chat, &ann).await.unwrap(), None);
    store.advance_read_state(&app, chat, &ann, ReceiptKind::Delivered, MessageNumber(10)).await.unwrap();
    store.advance_read_state(&app, chat, &ann, ReceiptKind::Delivered, MessageNumber(7)).await.unwrap();
    store.advance_read_state(&app, chat, &ann, ReceiptKind::Read, MessageNumber(4)).await.unwrap();
    store.advance_read_state(&app, chat, &ann, ReceiptKind::Read, MessageNumber(2)).await.unwrap();
    let state = |user: &UserId, delivered: u64, read: u64| ReadState {
        user: user.clone(),
        delivered: MessageNumber(delivered),
        read: MessageNumber(read),
    };
    assert_eq!(store.read_state(&app, chat, &ann).await.unwrap(), Some(state(&ann, 10, 4)));
    // Reading past the delivered position moves both.
    store.advance_read_state(&app, chat, &bob, ReceiptKind::Read, MessageNumber(12)).await.unwrap();
    store.advance_read_state(&app, chat, &bob, ReceiptKind::Delivered, MessageNumber(11)).await.unwrap();
    assert_eq!(
        store.read_states(&app, chat, page(0, 10)).await.unwrap(),
        [state(&ann, 10, 4), state(&bob, 12, 12)]
    );
    assert_eq!(store.read_states(&app, chat, page(1, 10)).await.unwrap(), [state(&bob, 12, 12)]);
    assert_eq!(store.read_states(&app, ChatNumber(4), page(0, 10)).await.unwrap(), []);
}

/// Insert, find, list by number with paging, highest number.
pub async fn chats(store: &dyn Store) {
    let app = AppId::generate();
    let other = AppId::generate();
    assert_eq!(store.max_chat_number(&app).await.unwrap(), 0);
    assert_eq!(store.chats(&app, page(0, 10)).await.unwrap(), []);

    let chat = |n: u64| {
        let kind = if n.is_multiple_of(4) { ChatKind::Direct } else { ChatKind::Group };
        Chat::new(app.clone(), ChatNumber(n), kind, Timestamp(1_700_000_000_000 + n as i64))
    };
    // Inserted out of order: lists are by number all the same.
    for n in
        (1..=25u64).rev().filter(|n| n.is_multiple_of(2)).chain((1..=25u64).filter(|n| !n.is_multiple_of(2)))
    {
        store.insert_chat(&chat(n)).await.unwrap();
    }
    store.insert_chat(&Chat { app: other.clone(), ..chat(99) }).await.unwrap();

    assert_eq!(store.chat(&app, ChatNumber(8)).await.unwrap(), Some(chat(8)));
    assert_eq!(store.chat(&app, ChatNumber(7)).await.unwrap(), Some(chat(7)));
    assert_eq!(store.chat(&app, ChatNumber(26)).await.unwrap(), None);
    assert_eq!(store.chat(&other, ChatNumber(7)).await.unwrap(), None);

    let listed = |chats: Vec<Chat>| chats.iter().map(|c| c.number.get()).collect::<Vec<_>>();
    assert_eq!(listed(store.chats(&app, page(0, 10)).await.unwrap()), (1..=10).collect::<Vec<_>>());
    assert_eq!(listed(store.chats(&app, page(10, 10)).await.unwrap()), (11..=20).collect::<Vec<_>>());
    assert_eq!(listed(store.chats(&app, page(20, 10)).await.unwrap()), (21..=25).collect::<Vec<_>>());
    assert_eq!(listed(store.chats(&app, page(25, 10)).await.unwrap()), Vec::<u64>::new());
    assert_eq!(listed(store.chats(&app, page(3, 0)).await.unwrap()), Vec::<u64>::new());
    assert_eq!(store.chats(&app, page(0, 100)).await.unwrap(), (1..=25).map(chat).collect::<Vec<_>>());

    assert_eq!(store.max_chat_number(&app).await.unwrap(), 25);
    assert_eq!(store.max_chat_number(&other).await.unwrap(), 99);
}

/// 2100 messages in one chat (three buckets), listed newest first with every
/// kind of bound, crossing bucket boundaries.
pub async fn messages_across_buckets(store: &dyn Store) {
    let app = AppId::generate();
    assert_eq!(store.max_message_number(&app, ChatNumber(1)).await.unwrap(), 0);
    assert_eq!(list(store, &app, 1, range(None, None, 0, 10)).await, Vec::<u64>::new());
    store.insert_messages(&[]).await.unwrap();

    let all: Vec<Message> = (1..=2100).map(|n| message(&app, 1, n, format!("message {n}"))).collect();
    for chunk in all.chunks(300) {
        store.insert_messages(chunk).await.unwrap();
    }
    // Writing the same messages again changes nothing.
    store.insert_messages(&all[1000..1100]).await.unwrap();

    assert_eq!(store.max_message_number(&app, ChatNumber(1)).await.unwrap(), 2100);
    assert_eq!(store.max_message_number(&app, ChatNumber(2)).await.unwrap(), 0);
    // Every fifth message answers the one before it: that one carries the thread.
    let expected = |n: u64| {
        let mut m = all[n as usize - 1].clone();
        if (n + 1).is_multiple_of(5) && n < 2100 {
            m.reply_count = 1;
            m.last_reply_at = Some(all[n as usize].created_at);
        }
        m
    };
    for n in [1, 2, 3, 4, 5, 1023, 1024, 1025, 2047, 2048, 2100] {
        let found = store.message(&app, ChatNumber(1), MessageNumber(n)).await.unwrap();
        assert_eq!(found, Some(expected(n)), "message {n}");
    }
    assert_eq!(store.message(&app, ChatNumber(1), MessageNumber(2101)).await.unwrap(), None);
    assert_eq!(store.message(&app, ChatNumber(2), MessageNumber(1)).await.unwrap(), None);
    // Numbers no message can have (a client's `reply_to`) are not found, not an error.
    assert_eq!(store.message(&app, ChatNumber(1), MessageNumber(0)).await.unwrap(), None);
    assert_eq!(store.message(&app, ChatNumber(1), MessageNumber(u64::MAX)).await.unwrap(), None);

    let down = |from: u64, to: u64| (to..=from).rev().collect::<Vec<u64>>();
    // Newest first, whole rows.
    let newest = store.messages(&app, ChatNumber(1), range(None, None, 0, 3)).await.unwrap();
    assert_eq!(newest, [expected(2100), expected(2099), expected(2098)]);
    // Everything, across the three buckets.
    assert_eq!(list(store, &app, 1, range(None, None, 0, 5000)).await, down(2100, 1));
    // `before` just above a bucket boundary.
    let b = MESSAGE_BUCKET;
    assert_eq!(list(store, &app, 1, range(Some(b + 2), None, 0, 5)).await, down(b + 1, b - 3));
    assert_eq!(list(store, &app, 1, range(Some(b), None, 0, 3)).await, down(b - 1, b - 3));
    // `after` only.
    assert_eq!(list(store, &app, 1, range(None, Some(1020), 0, 2000)).await, down(2100, 1021));
    assert_eq!(list(store, &app, 1, range(None, Some(2097), 0, 10)).await, down(2100, 2098));
    // Both bounds, with skip, across two boundaries.
    assert_eq!(list(store, &app, 1, range(Some(2050), Some(1000), 40, 30)).await, down(2009, 1980));
    assert_eq!(list(store, &app, 1, range(Some(2050), Some(1000), 1000, 100)).await, down(1049, 1001));
    assert_eq!(list(store, &app, 1, range(Some(2100), Some(1), 0, 5000)).await, down(2099, 2));
    // Paging walks the same order.
    let mut paged = Vec::new();
    for skip in (0..2100).step_by(700) {
        paged.extend(list(store, &app, 1, range(None, None, skip, 700)).await);
    }
    assert_eq!(paged, down(2100, 1));
    // A `before` above everything stored, or at the largest possible number.
    assert_eq!(list(store, &app, 1, range(Some(1_000_000), None, 0, 2)).await, down(2100, 2099));
    assert_eq!(list(store, &app, 1, range(Some(u64::MAX), None, 0, 2)).await, down(2100, 2099));
    // Empty ranges and pages.
    let empty = Vec::<u64>::new();
    assert_eq!(list(store, &app, 1, range(Some(1), None, 0, 10)).await, empty);
    assert_eq!(list(store, &app, 1, range(Some(0), None, 0, 10)).await, empty);
    assert_eq!(list(store, &app, 1, range(Some(600), Some(599), 0, 10)).await, empty);
    assert_eq!(list(store, &app, 1, range(Some(600), Some(700), 0, 10)).await, empty);
    assert_eq!(list(store, &app, 1, range(None, Some(2100), 0, 10)).await, empty);
    assert_eq!(list(store, &app, 1, range(None, None, 2100, 10)).await, empty);
    assert_eq!(list(store, &app, 1, range(None, None, 0, 0)).await, empty);
    assert_eq!(list(store, &app, 2, range(None, None, 0, 10)).await, empty);
}

/// A chat whose messages sit in far-apart buckets with empty ones between,
/// and one call that writes to several chats at once.
pub async fn messages_in_sparse_buckets(store: &dyn Store) {
    let app = AppId::generate();
    let b = MESSAGE_BUCKET;
    let spread = [5, 6, 3 * b + 1, 40 * b + 7, 100 * b - 1, 100 * b];
    let mut batch: Vec<Message> = spread.iter().map(|&n| message(&app, 1, n, format!("s{n}"))).collect();
    batch.extend((1..=50).map(|n| message(&app, 2, n, format!("c2 {n}"))));
    batch.extend((1..=50).map(|n| message(&app, 3, n, format!("c3 {n}"))));
    store.insert_messages(&batch).await.unwrap();

    let mut newest_first = spread.to_vec();
    newest_first.reverse();
    assert_eq!(store.max_message_number(&app, ChatNumber(1)).await.unwrap(), 100 * b);
    assert_eq!(list(store, &app, 1, range(None, None, 0, 100)).await, newest_first);
    assert_eq!(list(store, &app, 1, range(Some(100 * b - 1), None, 0, 100)).await, newest_first[2..]);
    assert_eq!(list(store, &app, 1, range(Some(99 * b), Some(5), 0, 100)).await, [40 * b + 7, 3 * b + 1, 6]);
    assert_eq!(list(store, &app, 1, range(None, Some(6), 1, 2)).await, [100 * b - 1, 40 * b + 7]);
    assert_eq!(list(store, &app, 1, range(Some(3 * b), Some(5), 0, 10)).await, [6]);
    assert_eq!(store.max_message_number(&app, ChatNumber(2)).await.unwrap(), 50);
    assert_eq!(list(store, &app, 3, range(Some(11), Some(7), 0, 10)).await, [10, 9, 8]);
}

/// Calls carrying more message bytes than one CQL batch may hold (Cassandra
/// refuses batches above 50 KiB by default), including single huge messages.
pub async fn large_message_batches(store: &dyn Store) {
    let app = AppId::generate();
    // 300 messages of 2 KiB: 600 KiB in one call, crossing a bucket boundary.
    let first = MESSAGE_BUCKET - 150;
    let big: Vec<Message> =
        (first..first + 300).map(|n| message(&app, 1, n, format!("{n:>6}{}", "é".repeat(1021)))).collect();
    store.insert_messages(&big).await.unwrap();
    // Lone messages above the batch limit, next to small ones.
    let huge = vec![
        message(&app, 2, 1, "a".repeat(60 * 1024)),
        message(&app, 2, 2, "b".to_owned()),
        message(&app, 2, 3, "c".repeat(45 * 1024)),
    ];
    store.insert_messages(&huge).await.unwrap();

    let listed = store.messages(&app, ChatNumber(1), range(None, None, 0, 1000)).await.unwrap();
    // (Threads are `threads`' business: compare the messages as sent.)
    let as_sent: Vec<Message> =
        listed.into_iter().map(|m| Message { reply_count: 0, last_reply_at: None, ..m }).collect();
    assert_eq!(as_sent, big.iter().rev().cloned().collect::<Vec<_>>());
    let listed = store.messages(&app, ChatNumber(2), range(None, None, 0, 10)).await.unwrap();
    assert_eq!(listed, huge.iter().rev().cloned().collect::<Vec<_>>());
}

/// Add, add again (keeps the first join time), list, check, remove, and the
/// mirror list of a user's chats.
pub async fn members(store: &dyn Store) {
    let app = AppId::generate();
    let (alice, bob, carol) = (user("alice"), user("bob@example.com"), user("carol"));
    let chat = ChatNumber(1);
    assert!(!store.is_member(&app, chat, &alice).await.unwrap());
    assert!(!store.remove_member(&app, chat, &alice).await.unwrap());
    assert_eq!(store.members(&app, chat, page(0, 10)).await.unwrap(), []);
    assert_eq!(store.user_chats(&app, &alice, page(0, 10)).await.unwrap(), []);

    store.add_member(&app, chat, &carol, Role::Member, Timestamp(3_000)).await.unwrap();
    store.add_member(&app, chat, &alice, Role::Member, Timestamp(1_000)).await.unwrap();
    store.add_member(&app, chat, &bob, Role::Member, Timestamp(2_000)).await.unwrap();
    store.add_member(&app, chat, &alice, Role::Owner, Timestamp(9_000)).await.unwrap();
    for n in [3, 2, 12] {
        store.add_member(&app, ChatNumber(n), &alice, Role::Member, Timestamp(4_000)).await.unwrap();
    }

    let member =
        |user: &UserId, at: i64| Member { user: user.clone(), joined_at: Timestamp(at), role: Role::Member };
    let everyone = vec![member(&alice, 1_000), member(&bob, 2_000), member(&carol, 3_000)];
    assert_eq!(store.members(&app, chat, page(0, 10)).await.unwrap(), everyone);
    assert_eq!(store.members(&app, chat, page(1, 1)).await.unwrap(), everyone[1..2]);
    assert_eq!(store.members(&app, chat, page(2, 5)).await.unwrap(), everyone[2..]);
    assert_eq!(store.members(&app, chat, page(0, 0)).await.unwrap(), []);
    assert!(store.is_member(&app, chat, &bob).await.unwrap());
    assert!(!store.is_member(&app, ChatNumber(2), &bob).await.unwrap());
    assert!(!store.is_member(&AppId::generate(), chat, &bob).await.unwrap());

    let chats_of = |n: &[u64]| n.iter().copied().map(ChatNumber).collect::<Vec<_>>();
    assert_eq!(store.user_chats(&app, &alice, page(0, 10)).await.unwrap(), chats_of(&[1, 2, 3, 12]));
    assert_eq!(store.user_chats(&app, &alice, page(1, 2)).await.unwrap(), chats_of(&[2, 3]));
    assert_eq!(store.user_chats(&app, &bob, page(0, 10)).await.unwrap(), chats_of(&[1]));

    assert!(store.remove_member(&app, chat, &alice).await.unwrap());
    assert!(!store.remove_member(&app, chat, &alice).await.unwrap());
    assert!(!store.is_member(&app, chat, &alice).await.unwrap());
    assert_eq!(store.members(&app, chat, page(0, 10)).await.unwrap(), everyone[1..]);
    assert_eq!(store.user_chats(&app, &alice, page(0, 10)).await.unwrap(), chats_of(&[2, 3, 12]));

    // Joining again after leaving is a new join.
    store.add_member(&app, chat, &alice, Role::Member, Timestamp(7_000)).await.unwrap();
    assert_eq!(store.members(&app, chat, page(0, 1)).await.unwrap(), [member(&alice, 7_000)]);
}

/// A JSON value that is an object, as metadata.
fn object(value: serde_json::Value) -> Metadata {
    value.as_object().cloned().unwrap()
}

/// A chat's info round-trips (name, description, metadata, creator,
/// updated_at); an update overwrites exactly the info, and clears what is none.
pub async fn groups(store: &dyn Store) {
    let app = AppId::generate();
    let plain = Chat::new(app.clone(), ChatNumber(1), ChatKind::Group, Timestamp(1_700_000_000_000));
    store.insert_chat(&plain).await.unwrap();
    let read = store.chat(&app, ChatNumber(1)).await.unwrap().unwrap();
    assert_eq!(read, plain, "a chat without info reads as none, updated when created");
    assert_eq!((read.name, read.metadata.len(), read.updated_at), (None, 0, read.created_at));

    let full = Chat {
        name: Some("Crew ✓".into()),
        description: Some("everyone on board".into()),
        metadata: object(serde_json::json!({"topic": "launch", "n": 3, "nested": {"a": [1, 2]}})),
        created_by: Some(user("alice")),
        ..Chat::new(app.clone(), ChatNumber(2), ChatKind::Group, Timestamp(1_700_000_000_002))
    };
    store.insert_chat(&full).await.unwrap();
    assert_eq!(store.chat(&app, ChatNumber(2)).await.unwrap(), Some(full.clone()));

    let renamed = Chat {
        name: Some("Crew 2".into()),
        description: None,
        metadata: object(serde_json::json!({"topic": "landing"})),
        updated_at: Timestamp(1_700_000_500_000),
        ..full.clone()
    };
    store.update_chat(&renamed).await.unwrap();
    assert_eq!(store.chat(&app, ChatNumber(2)).await.unwrap(), Some(renamed.clone()));
    let listed = store.chats(&app, page(0, 10)).await.unwrap();
    assert_eq!(listed, vec![plain.clone(), renamed.clone()]);

    let cleared =
        Chat { name: None, metadata: Metadata::new(), updated_at: Timestamp(1_700_000_600_000), ..renamed };
    store.update_chat(&cleared).await.unwrap();
    let read = store.chat(&app, ChatNumber(2)).await.unwrap().unwrap();
    assert_eq!(read, cleared);
    assert_eq!(read.created_by, Some(user("alice")), "an update keeps the creator");
    assert_eq!(read.kind, ChatKind::Group);
}

/// Roles: stored on join, read back by `member` and `members`, changed by
/// `set_role` only for members (never bringing a removed member back); a
/// member joined again keeps their role; removal forgets it.
pub async fn roles(store: &dyn Store) {
    let app = AppId::generate();
    let chat = ChatNumber(5);
    let (owner, admin, plain) = (user("olga"), user("adam"), user("mia"));
    store.add_member(&app, chat, &owner, Role::Owner, Timestamp(1_000)).await.unwrap();
    store.add_member(&app, chat, &admin, Role::Admin, Timestamp(2_000)).await.unwrap();
    store.add_member(&app, chat, &plain, Role::Member, Timestamp(3_000)).await.unwrap();
    let role_of = |members: &[Member], u: &UserId| members.iter().find(|m| &m.user == u).map(|m| m.role);

    let members = store.members(&app, chat, page(0, 10)).await.unwrap();
    assert_eq!(role_of(&members, &owner), Some(Role::Owner));
    assert_eq!(role_of(&members, &admin), Some(Role::Admin));
    assert_eq!(role_of(&members, &plain), Some(Role::Member));
    let one = store.member(&app, chat, &admin).await.unwrap().unwrap();
    assert_eq!(one, Member { user: admin.clone(), joined_at: Timestamp(2_000), role: Role::Admin });
    assert_eq!(store.member(&app, chat, &user("nobody")).await.unwrap(), None);
    assert_eq!(store.member(&app, ChatNumber(6), &admin).await.unwrap(), None);

    // Adding again changes neither the join time nor the role.
    store.add_member(&app, chat, &admin, Role::Member, Timestamp(9_000)).await.unwrap();
    assert_eq!(store.member(&app, chat, &admin).await.unwrap(), Some(one));

    assert!(store.set_role(&app, chat, &plain, Role::Admin).await.unwrap());
    assert_eq!(store.member(&app, chat, &plain).await.unwrap().unwrap().role, Role::Admin);
    assert!(store.set_role(&app, chat, &admin, Role::Member).await.unwrap());
    assert_eq!(store.member(&app, chat, &admin).await.unwrap().unwrap().role, Role::Member);
    assert!(store.set_role(&app, chat, &admin, Role::Owner).await.unwrap());
    assert_eq!(store.member(&app, chat, &admin).await.unwrap().unwrap().role, Role::Owner);

    // Not a member: nothing written, nobody appears.
    assert!(!store.set_role(&app, chat, &user("ghost"), Role::Owner).await.unwrap());
    assert_eq!(store.member(&app, chat, &user("ghost")).await.unwrap(), None);
    assert!(!store.is_member(&app, chat, &user("ghost")).await.unwrap());
    assert_eq!(store.members(&app, chat, page(0, 10)).await.unwrap().len(), 3);

    // A removed member's role goes with them: set_role cannot bring them
    // back, and joining again starts from the role given then.
    assert!(store.remove_member(&app, chat, &plain).await.unwrap());
    assert!(!store.set_role(&app, chat, &plain, Role::Owner).await.unwrap());
    assert_eq!(store.member(&app, chat, &plain).await.unwrap(), None);
    assert!(!store.is_member(&app, chat, &plain).await.unwrap());
    store.add_member(&app, chat, &plain, Role::Member, Timestamp(5_000)).await.unwrap();
    assert_eq!(store.member(&app, chat, &plain).await.unwrap().unwrap().role, Role::Member);
}
