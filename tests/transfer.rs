//! `weft export` / `weft import`: an application moves from the embedded store
//! to the cluster store (CQL + Redis) and back, equal message by message, its
//! counters going on where they were; bad input is refused before anything is written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::server::{Mode, TestServer, config};
use serde_json::{Value, json};
use weft::auth::SigningSecret;
use weft::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};
use weft::model::{
    Application, AttachedFile, Attachment, Chat, ChatKind, ChatLevel, Device, DirectPair, EventType, Message,
    Metadata, NotificationSettings, PushProvider, QuietHours, Reactions, ReceiptKind, Role, UserGroups,
    Webhook,
};
use weft::store::{DynStore, EmbeddedStore, Store};
use weft::{Config, ImportInputError, TransferError};

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn message(app: &AppId, chat: u64, n: u64, sender: &str, body: &str) -> Message {
    Message {
        app: app.clone(),
        chat: ChatNumber(chat),
        number: MessageNumber(n),
        body: body.to_owned(),
        sender: Some(user(sender)),
        client_msg_id: Some(format!("c-{chat}-{n}")),
        reply_to: None,
        created_at: Timestamp(1_700_000_000_000 + (n as i64) * 1000),
        edited_at: None,
        deleted_at: None,
        reply_count: 0,
        last_reply_at: None,
        attachments: Vec::new(),
        reactions: Reactions::default(),
    }
}

/// An application with a bit of everything, written through the store.
async fn fixture(store: &dyn Store) -> AppToken {
    let at = Timestamp(1_700_000_000_000);
    let mut metadata = Metadata::new();
    metadata.insert("plan".into(), json!("gold"));
    let app = Application {
        id: AppId::generate(),
        token: AppToken::generate(),
        name: "moving".into(),
        secret: SigningSecret::generate(),
        jwks_url: Some("https://idp.example/jwks.json".into()),
        user_groups: UserGroups::BackendOnly,
        created_at: at,
        updated_at: Timestamp(at.0 + 5),
        description: Some("an app that moves".into()),
        metadata: metadata.clone(),
    };
    store.insert_application(&app).await.unwrap();
    let id = &app.id;
    let group = Chat {
        name: Some("plans".into()),
        description: Some("where we plan".into()),
        metadata,
        created_by: Some(user("alice")),
        updated_at: Timestamp(at.0 + 9),
        ..Chat::new(id.clone(), ChatNumber(1), ChatKind::Group, at)
    };
    store.insert_chat(&group).await.unwrap();
    let direct = Chat::new(id.clone(), ChatNumber(2), ChatKind::Direct, at);
    store.insert_chat(&direct).await.unwrap();
    let pair = DirectPair::new(user("alice"), user("bob")).unwrap();
    store.claim_direct_chat(id, &pair, ChatNumber(2)).await.unwrap();
    // Chat 3 was numbered and never stored (a gap); chat 4 is empty.
    store.insert_chat(&Chat::new(id.clone(), ChatNumber(4), ChatKind::Group, at)).await.unwrap();
    for (chat, who, role) in [
        (1, "alice", Role::Owner),
        (1, "bob", Role::Admin),
        (1, "carol", Role::Member),
        (2, "alice", Role::Member),
        (2, "bob", Role::Member),
    ] {
        store
            .add_member(id, ChatNumber(chat), &user(who), role, Timestamp(at.0 + chat as i64))
            .await
            .unwrap();
    }

    let file = Attachment {
        app: id.clone(),
        id: AttachmentId::generate(),
        chat: ChatNumber(1),
        name: "plan.pdf".into(),
        content_type: "application/pdf".into(),
        size: 1234,
        created_by: Some(user("bob")),
        created_at: at,
        message: None,
    };
    store.insert_attachment(&file).await.unwrap();
    let mut messages = vec![
        message(id, 1, 1, "alice", "hello @bob"),
        message(id, 1, 2, "bob", "first draft"),
        message(id, 1, 3, "carol", "a reply"),
        message(id, 1, 4, "bob", "see the file"),
        message(id, 1, 5, "alice", "oops"),
        message(id, 1, 6, "carol", "another reply"),
        message(id, 1, 8, "alice", "after a gap"),
        message(id, 2, 1, "alice", "just us"),
        message(id, 2, 2, "bob", "yes"),
    ];
    messages[2].reply_to = Some(MessageNumber(1));
    messages[5].reply_to = Some(MessageNumber(1));
    messages[5].client_msg_id = None;
    messages[3].attachments = vec![AttachedFile { url: None, ..file.file() }];
    store.insert_messages(&messages[..4]).await.unwrap();
    store.attach(id, &file.id, ChatNumber(1), MessageNumber(4)).await.unwrap();
    store.insert_messages(&messages[4..]).await.unwrap();
    let c1 = ChatNumber(1);
    store.edit_message(id, c1, MessageNumber(2), "second draft", Timestamp(at.0 + 100_000)).await.unwrap();
    store.edit_message(id, c1, MessageNumber(2), "final @carol", Timestamp(at.0 + 200_000)).await.unwrap();
    store.edit_message(id, c1, MessageNumber(5), "oops!", Timestamp(at.0 + 300_000)).await.unwrap();
    store.delete_message(id, c1, MessageNumber(5), Timestamp(at.0 + 400_000)).await.unwrap();
    store.delete_message(id, c1, MessageNumber(6), Timestamp(at.0 + 500_000)).await.unwrap();
    for (n, emoji, who) in [(1, "👍", "bob"), (1, "👍", "carol"), (1, ":party:", "alice"), (2, "❤", "alice")]
    {
        store.set_reaction(id, c1, MessageNumber(n), emoji, &user(who), true).await.unwrap();
    }
    store.advance_read_state(id, c1, &user("bob"), ReceiptKind::Read, MessageNumber(4)).await.unwrap();
    store.advance_read_state(id, c1, &user("bob"), ReceiptKind::Delivered, MessageNumber(8)).await.unwrap();
    store.advance_read_state(id, c1, &user("carol"), ReceiptKind::Delivered, MessageNumber(2)).await.unwrap();
    store
        .advance_read_state(id, ChatNumber(2), &user("alice"), ReceiptKind::Read, MessageNumber(2))
        .await
        .unwrap();

    store
        .insert_webhook(&Webhook {
            app: id.clone(),
            id: WebhookId::generate(),
            url: "https://hooks.example/weft".into(),
            events: vec![EventType::MessageCreated, EventType::MemberAdded],
            secret: "whsec_1".into(),
            previous_secret: Some("whsec_0".into()),
            previous_until: Some(Timestamp(at.0 + 60_000)),
            created_at: at,
            disabled_at: None,
            disabled_reason: None,
        })
        .await
        .unwrap();
    store
        .put_device(&Device {
            app: id.clone(),
            user: user("carol"),
            id: DeviceId::parse("phone-1").unwrap(),
            provider: PushProvider::Fcm,
            token: "fcm-token".into(),
            created_at: at,
            updated_at: Timestamp(at.0 + 7),
        })
        .await
        .unwrap();
    let mut settings = NotificationSettings::default_for(id, &user("bob"));
    settings.email = true;
    settings.email_address = Some("bob@example.com".into());
    settings.chats.insert(ChatNumber(2), ChatLevel::Mentions);
    settings.quiet_hours =
        Some(QuietHours { from: "22:00".into(), to: "07:00".into(), tz: "Europe/Paris".into() });
    settings.updated_at = Timestamp(at.0 + 11);
    store.put_notification_settings(&settings).await.unwrap();
    app.token
}

async fn export_to_vec(config: &Config, token: &AppToken) -> Vec<String> {
    let mut out = Vec::new();
    weft::export(config, token, &mut out).await.unwrap_or_else(|e| panic!("export: {e:?}"));
    String::from_utf8(out).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Every line but the header (which says when it was written), as JSON.
fn records(lines: &[String]) -> Vec<Value> {
    lines[1..].iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn assert_same(expected: &[String], found: &[String]) {
    let (expected, found) = (records(expected), records(found));
    for (a, b) in expected.iter().zip(&found) {
        assert_eq!(a, b, "a record differs");
    }
    assert_eq!(expected.len(), found.len(), "as many records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_moves_from_embedded_to_the_cluster_and_back_equal_message_by_message() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = config(Mode::Embedded, &dir.path().join("first"));
    let token = {
        let store = EmbeddedStore::open(&embedded.store.data_dir).unwrap();
        fixture(&store).await
    };
    let first = export_to_vec(&embedded, &token).await;
    let header: Value = serde_json::from_str(&first[0]).unwrap();
    assert_eq!((header["format"].as_str(), header["version"].as_u64()), (Some("weft-export"), Some(1)));
    let kinds: Vec<String> = records(&first).iter().map(|r| r["type"].as_str().unwrap().to_owned()).collect();
    for kind in ["application", "webhook", "chat", "member", "message", "attachment", "receipt", "device"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} record in {kinds:?}");
    }
    assert!(kinds.iter().any(|k| k == "notification_settings"));
    assert_eq!(kinds.last().map(String::as_str), Some("end"));
    let edited = records(&first).into_iter().find(|r| r["type"] == "message" && r["seq"] == 2).unwrap();
    assert_eq!(edited["versions"].as_array().unwrap().len(), 2, "{edited}");
    assert_eq!(edited["mentions"], json!(["carol"]));
    let path = write_lines(dir.path(), "first.jsonl", &first);

    // Into the cluster store: equal, and the counters go on.
    let cluster = config(Mode::Cluster, &dir.path().join("unused"));
    let done = weft::import(&cluster, Some(&path)).await.unwrap_or_else(|e| panic!("import: {e:?}"));
    assert_eq!((done.chats, done.messages), (3, 9));
    let second = export_to_vec(&cluster, &token).await;
    assert_same(&first, &second);
    let again = weft::import(&cluster, Some(&path)).await;
    assert!(matches!(again, Err(TransferError::AppExists)), "{again:?}");

    let (prefix, keyspace) = (cluster.redis.key_prefix.clone(), cluster.cql.keyspace.clone());
    let node = TestServer::start_with(Mode::Cluster, move |c| {
        c.redis.key_prefix = prefix.clone();
        c.cql.keyspace = keyspace.clone();
        c.server.admin_key = "transfer-key".into();
    })
    .await;
    next_numbers_follow(&node, &token).await;
    let (status, body) =
        node.send(node.http.get(node.url("/api/v1/backup")).bearer_auth("transfer-key")).await;
    assert_eq!(
        (status, common::server::code(&body)),
        (404, "backup_unavailable"),
        "the CQL store has no backup"
    );
    node.stop().await;
    let moved_on = export_to_vec(&cluster, &token).await;

    // And back into a new embedded store.
    let path = write_lines(dir.path(), "second.jsonl", &moved_on);
    let back = config(Mode::Embedded, &dir.path().join("back"));
    weft::import(&back, Some(&path)).await.unwrap_or_else(|e| panic!("import back: {e:?}"));
    assert_same(&moved_on, &export_to_vec(&back, &token).await);
}

/// After an import the next message of chat 1 is 9 (8 was its last) and the
/// next chat is 5 (4 was the last).
async fn next_numbers_follow(node: &TestServer, token: &AppToken) {
    let token = token.as_str();
    let url = node.url(&format!("/api/v1/applications/{token}/chats/1/messages"));
    let (status, body) = node.send(node.http.post(url).json(&json!({"body":"moved","sender":"alice"}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["number"], 9, "{body}");
    assert_eq!(node.new_chat(token).await, 5);
    let (status, page) = node.get(&format!("/api/v1/applications/{token}/chats/1/messages")).await;
    assert_eq!(status, 200, "{page}");
}

/// Whether the store `config` names holds anything of the application `id`.
async fn holds_anything(config: &Config, token: &AppToken, id: &str) -> bool {
    let store: DynStore = std::sync::Arc::new(EmbeddedStore::open(&config.store.data_dir).unwrap());
    let app = AppId::new(id);
    store.application_by_token(token).await.unwrap().is_some()
        || store.max_chat_number(&app).await.unwrap() > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_line_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let source = config(Mode::Embedded, &dir.path().join("source"));
    let token = {
        let store = EmbeddedStore::open(&source.store.data_dir).unwrap();
        fixture(&store).await
    };
    let good = export_to_vec(&source, &token).await;
    let app: Value = serde_json::from_str(&good[1]).unwrap();
    let id = app["id"].as_str().unwrap().to_owned();
    let n = good.len();

    let mut cases: Vec<(&str, Vec<String>, u64)> = Vec::new();
    cases.push(("truncated", good[..n - 3].to_vec(), (n - 2) as u64));
    let mut version = good.clone();
    version[0] = version[0].replace("\"version\":1", "\"version\":99");
    cases.push(("wrong version", version, 1));
    let mut malformed = good.clone();
    malformed[5] = malformed[5][..malformed[5].len() / 2].to_owned();
    cases.push(("malformed line", malformed, 6));
    let mut unknown = good.clone();
    unknown[4] = r#"{"type":"poll","question":"?"}"#.to_owned();
    cases.push(("unknown record", unknown, 5));
    let mut after = good.clone();
    after.push(good[2].clone());
    cases.push(("a line after the end", after, (n + 1) as u64));
    let mut counted = good.clone();
    counted[n - 1] = r#"{"type":"end","records":3}"#.to_owned();
    cases.push(("a wrong count", counted, n as u64));
    let mut disorder = good.clone();
    let message = disorder.iter().position(|l| l.contains("\"type\":\"message\"")).unwrap();
    disorder.swap(message, message + 1);
    cases.push(("messages out of order", disorder, (message + 2) as u64));
    let mut bad_user = good.clone();
    let member = bad_user.iter().position(|l| l.contains("\"type\":\"member\"")).unwrap();
    bad_user[member] = bad_user[member].replace("\"user\":\"alice\"", "\"user\":\"al ice\"");
    cases.push(("an invalid user id", bad_user, (member + 1) as u64));

    let mut counter = good.clone();
    let chat = counter.iter().position(|l| l.contains("\"type\":\"chat\"")).unwrap();
    counter[chat] = counter[chat].replace("\"seq_counter\":8", "\"seq_counter\":1");
    let second = counter.iter().position(|l| l.contains("\"seq\":2,")).unwrap();
    cases.push(("a seq above its counter", counter, (second + 1) as u64));

    for (what, lines, line) in cases {
        let target = config(Mode::Embedded, &dir.path().join(what.replace(' ', "-")));
        let path = write_lines(dir.path(), "bad.jsonl", &lines);
        let err = weft::import(&target, Some(&path)).await.expect_err(what);
        match &err {
            TransferError::Input { line: found, reason } => {
                assert_eq!(*found, line, "{what}: {err:?}: {reason}");
            }
            other => panic!("{what}: not an input error: {other:?}"),
        }
        assert!(!holds_anything(&target, &token, &id).await, "{what}: something was written");
    }
    let mut version = good.clone();
    version[0] = version[0].replace("\"version\":1", "\"version\":99");
    let err = weft::import(&source, Some(&write_lines(dir.path(), "v.jsonl", &version))).await.unwrap_err();
    assert!(matches!(
        err,
        TransferError::Input { reason: ImportInputError::Version { version: 99, .. }, .. }
    ));

    // Into the store that holds it already: refused, before anything is written.
    let path = write_lines(dir.path(), "good.jsonl", &good);
    let err = weft::import(&source, Some(&path)).await.unwrap_err();
    assert!(matches!(err, TransferError::AppExists), "{err:?}");
}

fn weft_cli(config_text: &str, dir: &Path, args: &[&str]) -> std::process::Command {
    let file = dir.join(format!("weft-{:08x}.toml", rand::random::<u32>()));
    std::fs::write(&file, config_text).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weft"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WEFT_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--config").arg(&file).args(args);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exports_to_a_private_file_and_imports_from_a_file_or_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = |name: &str| format!("[store]\ndata_dir = \"{}\"\n", dir.path().join(name).display());
    let source = config(Mode::Embedded, &dir.path().join("source"));
    let token = {
        let store = EmbeddedStore::open(&source.store.data_dir).unwrap();
        fixture(&store).await
    };
    let out = dir.path().join("app.jsonl");
    let args = ["export", "--app", token.as_str(), "--out", out.to_str().unwrap()];
    let run = weft_cli(&embedded("source"), dir.path(), &args).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the export holds secrets: {mode:o}");
    }

    let run = weft_cli(&embedded("by-file"), dir.path(), &["import", "--in", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("imported 3 chats, 9 messages"));

    let run = weft_cli(&embedded("by-stdin"), dir.path(), &["import"])
        .stdin(std::fs::File::open(&out).unwrap())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let lines: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().map(str::to_owned).collect();
    let back = config(Mode::Embedded, &dir.path().join("by-stdin"));
    assert_same(&lines, &export_to_vec(&back, &token).await);

    // An export that fails leaves no file behind.
    let missing = dir.path().join("missing.jsonl");
    let args = ["export", "--app", "no-such-token", "--out", missing.to_str().unwrap()];
    let run = weft_cli(&embedded("source"), dir.path(), &args).output().unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("no application has this token"));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("missing"))
    );

    // Again into the same store: refused, and the message says why.
    let run = weft_cli(&embedded("by-file"), dir.path(), &["import", "--in", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("already holds the application"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_cut_off_before_its_application_record_finishes_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let source = config(Mode::Embedded, &dir.path().join("source"));
    let token = {
        let store = EmbeddedStore::open(&source.store.data_dir).unwrap();
        fixture(&store).await
    };
    let lines = export_to_vec(&source, &token).await;
    let path = write_lines(dir.path(), "app.jsonl", &lines);
    let target = config(Mode::Embedded, &dir.path().join("target"));
    weft::import(&target, Some(&path)).await.unwrap();

    // What an import cut off at its last write leaves: every row but the application's own.
    {
        let db = redb::Database::open(target.store.data_dir.join("weft.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("applications"))
            .unwrap()
            .remove(token.as_str())
            .unwrap();
        let app: Value = serde_json::from_str(&lines[1]).unwrap();
        txn.open_table(redb::TableDefinition::<&str, &str>::new("applications_by_id"))
            .unwrap()
            .remove(app["id"].as_str().unwrap())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&target.store.data_dir).unwrap();
    assert!(store.application_by_token(&token).await.unwrap().is_none(), "invisible to the API");
    drop(store);

    // Run again: nothing written twice (no second edit version, reaction or thread count).
    weft::import(&target, Some(&path)).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_same(&lines, &export_to_vec(&target, &token).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_longer_than_a_window_and_a_batch_moves_whole() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = config(Mode::Embedded, &dir.path().join("long"));
    let app = Application {
        id: AppId::generate(),
        token: AppToken::generate(),
        name: "long".into(),
        secret: SigningSecret::generate(),
        jwks_url: None,
        user_groups: UserGroups::Open,
        created_at: Timestamp(1_700_000_000_000),
        updated_at: Timestamp(1_700_000_000_000),
        description: None,
        metadata: Metadata::new(),
    };
    {
        let store = EmbeddedStore::open(&embedded.store.data_dir).unwrap();
        store.insert_application(&app).await.unwrap();
        store
            .insert_chat(&Chat::new(app.id.clone(), ChatNumber(1), ChatKind::Group, app.created_at))
            .await
            .unwrap();
        // 1,300 messages: past two export windows (500) and five import batches (256);
        // replies to message 1 from later batches.
        let mut messages: Vec<Message> =
            (1..=1300).map(|n| message(&app.id, 1, n, "alice", &format!("m{n}"))).collect();
        for n in [600, 1200, 1300] {
            messages[n - 1].reply_to = Some(MessageNumber(1));
        }
        store.insert_messages(&messages).await.unwrap();
        let c1 = ChatNumber(1);
        store
            .edit_message(&app.id, c1, MessageNumber(1100), "edited", Timestamp(1_800_000_000_000))
            .await
            .unwrap();
        store.set_reaction(&app.id, c1, MessageNumber(700), "👍", &user("bob"), true).await.unwrap();
        store.delete_message(&app.id, c1, MessageNumber(1300), Timestamp(1_800_000_000_001)).await.unwrap();
    }
    let first = export_to_vec(&embedded, &app.token).await;
    let parent = records(&first).into_iter().find(|r| r["type"] == "message" && r["seq"] == 1).unwrap();
    assert_eq!(parent["reply_count"], 3, "{parent}");
    let path = write_lines(dir.path(), "long.jsonl", &first);
    let cluster = config(Mode::Cluster, &dir.path().join("unused"));
    let done = weft::import(&cluster, Some(&path)).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(done.messages, 1300);
    assert_same(&first, &export_to_vec(&cluster, &app.token).await);
}
