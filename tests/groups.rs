//! Groups with roles, over REST (the backend, an owner's power) and the
//! WebSocket (users, with the role each change needs), on one node and
//! across three: chat info and `chat_updated`, `member_joined`,
//! `member_left`, `role_changed`, every role rule allowed and refused, and a
//! removed member's sessions hearing nothing more of the chat on any node.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::server::{Mode, TestServer, code};
use common::ws::{Client, assert_error, assert_message, connect};
use serde_json::{Value, json};

on_every_mode!(
    the_backend_names_edits_and_assigns_roles,
    each_role_rule_is_allowed_and_refused,
    the_last_owner_leaves_only_with_a_successor,
    a_removed_member_hears_nothing_more_on_any_node,
    direct_chats_take_no_members_and_no_roles,
);

fn chat_path(token: &str, chat: u64) -> String {
    format!("/api/v1/applications/{token}/chats/{chat}")
}

/// A group created by `owner` (its owner), with `others` as (user, role).
async fn group(s: &TestServer, token: &str, owner: &str, others: &[(&str, &str)]) -> u64 {
    let path = format!("/api/v1/applications/{token}/chats");
    let (status, chat) = s.post(&path, json!({"name": "crew", "created_by": owner})).await;
    assert_eq!(status, 201, "{chat}");
    let number = chat["number"].as_u64().unwrap();
    for (user, role) in others {
        let url = s.url(&format!("{}/members/{user}", chat_path(token, number)));
        let (status, body) = s.send(s.http.put(url).json(&json!({"role": role}))).await;
        assert_eq!(status, 204, "{body}");
    }
    number
}

/// The members of a chat and their roles, through REST.
async fn roles(s: &TestServer, token: &str, chat: u64) -> Vec<(String, String)> {
    let (status, members) = s.get(&format!("{}/members", chat_path(token, chat))).await;
    assert_eq!(status, 200, "{members}");
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user_id"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(u, r)| ((*u).to_owned(), (*r).to_owned())).collect()
}

/// Sends `frame` and returns its answer, skipping live traffic before it.
async fn ask(client: &mut Client, frame: Value) -> Value {
    let id = frame["id"].clone();
    client.send(frame).await;
    client.answer(&id).await
}

/// Reads until a frame of `kind` (`member_joined` included, which
/// `Client::next` skips); returns it.
async fn expect(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame = client.next_any().await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

/// Asserts a `forbidden` answer whose message names what is missing.
#[track_caller]
fn assert_forbidden(answer: &Value, id: &Value, needs: &str) {
    assert_error(answer, id, "forbidden");
    assert!(answer["message"].as_str().unwrap().contains(needs), "{answer} does not say {needs:?}");
}

async fn the_backend_names_edits_and_assigns_roles(s: &TestServer) {
    let token = s.new_app().await;
    let chats = format!("/api/v1/applications/{token}/chats");
    let (status, chat) = s
        .post(
            &chats,
            json!({"name":"Launch ✓","description":"the launch crew","metadata":{"topic":"launch","n":1},
                   "created_by":"olga"}),
        )
        .await;
    assert_eq!(status, 201, "{chat}");
    assert_eq!(
        (&chat["kind"], &chat["name"], &chat["description"], &chat["metadata"], &chat["created_by"]),
        (
            &json!("group"),
            &json!("Launch ✓"),
            &json!("the launch crew"),
            &json!({"topic":"launch","n":1}),
            &json!("olga")
        )
    );
    assert_eq!(chat["updated_at"], chat["created_at"]);
    let number = chat["number"].as_u64().unwrap();
    // The creator is the first member, as owner.
    assert_eq!(roles(s, &token, number).await, pairs(&[("olga", "owner")]));
    // A chat without a body is a plain group without info or members.
    let (status, plain) = s.send(s.http.post(s.url(&chats))).await;
    assert_eq!((status, &plain["name"], &plain["metadata"]), (201, &Value::Null, &json!({})), "{plain}");

    // PUT …/members/:u {"role"}: adds as that role, or changes a member's role.
    let member_url = |user: &str| s.url(&format!("{}/members/{user}", chat_path(&token, number)));
    assert_eq!(s.send(s.http.put(member_url("adam")).json(&json!({"role":"admin"}))).await.0, 204);
    assert_eq!(s.send(s.http.put(member_url("mia"))).await.0, 204);
    assert_eq!(s.send(s.http.put(member_url("mia")).json(&json!({}))).await.0, 204);
    assert_eq!(
        roles(s, &token, number).await,
        pairs(&[("adam", "admin"), ("mia", "member"), ("olga", "owner")])
    );
    let mut mia = connect(s, &token, "mia").await;
    assert_eq!(s.send(s.http.put(member_url("mia")).json(&json!({"role":"admin"}))).await.0, 204);
    let changed = expect(&mut mia, "role_changed").await;
    assert_eq!(changed, json!({"type":"role_changed","chat":number,"user":"mia","role":"admin"}));

    // PATCH: partial; a null text clears it; metadata merges key by key.
    let url = s.url(&chat_path(&token, number));
    let patch = json!({"description": null, "metadata": {"n": 2, "topic": null, "extra": [1, 2]}});
    let (status, patched) = s.send(s.http.patch(url.clone()).json(&patch)).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (&patched["name"], &patched["description"], &patched["metadata"]),
        (&json!("Launch ✓"), &Value::Null, &json!({"n": 2, "extra": [1, 2]}))
    );
    assert_ne!(patched["updated_at"], patched["created_at"]);
    let event = expect(&mut mia, "chat_updated").await;
    assert_eq!(
        (&event["chat"], &event["name"], &event["metadata"], &event["kind"], &event["created_by"]),
        (
            &json!(number),
            &json!("Launch ✓"),
            &json!({"n": 2, "extra": [1, 2]}),
            &json!("group"),
            &json!("olga")
        ),
        "{event}"
    );
    assert_eq!(event["updated_at"], patched["updated_at"]);
    let (_, shown) = s.get(&chat_path(&token, number)).await;
    assert_eq!(shown["metadata"], json!({"n": 2, "extra": [1, 2]}));
    let (status, cleared) =
        s.send(s.http.patch(url.clone()).json(&json!({"metadata": null, "name": ""}))).await;
    assert_eq!(
        (status, &cleared["metadata"], &cleared["name"]),
        (200, &json!({}), &Value::Null),
        "{cleared}"
    );

    // Bad input on every new endpoint and field, and nothing changed by it.
    let long = "x".repeat(201);
    let big = json!({"blob": "y".repeat(4_100)});
    for body in [
        json!({}),
        json!({"name": long}),
        json!({"description": "d".repeat(2_001)}),
        json!({"metadata": "text"}),
        json!({"metadata": [1]}),
        json!({"metadata": big}),
        json!({"name": 5}),
    ] {
        let (status, answer) = s.send(s.http.patch(url.clone()).json(&body)).await;
        assert_eq!((status, code(&answer)), (422, "invalid_field"), "{body} → {answer}");
    }
    for body in [
        json!({"name": long}),
        json!({"metadata": 3}),
        json!({"metadata": big}),
        json!({"created_by": "a b"}),
    ] {
        let (status, answer) = s.post(&chats, body.clone()).await;
        assert_eq!((status, code(&answer)), (422, "invalid_field"), "{body} → {answer}");
    }
    let (status, answer) =
        s.send(s.http.patch(s.url(&chat_path(&token, 999))).json(&json!({"name":"x"}))).await;
    assert_eq!((status, code(&answer)), (404, "chat_not_found"));
    let (status, answer) = s.send(s.http.put(member_url("mia")).json(&json!({"role":"king"}))).await;
    assert_eq!((status, code(&answer)), (422, "invalid_field"), "{answer}");
    // The last owner cannot be demoted, not even by the backend.
    let (status, answer) = s.send(s.http.put(member_url("olga")).json(&json!({"role":"member"}))).await;
    assert_eq!((status, code(&answer)), (403, "forbidden"), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("last owner"), "{answer}");
    let (status, answer) = s.send(s.http.delete(member_url("olga"))).await;
    assert_eq!((status, code(&answer)), (403, "forbidden"), "{answer}");
    assert_eq!(
        roles(s, &token, number).await,
        pairs(&[("adam", "admin"), ("mia", "admin"), ("olga", "owner")])
    );
    let (_, shown) = s.get(&chat_path(&token, number)).await;
    assert_eq!((&shown["metadata"], &shown["name"]), (&json!({}), &Value::Null));

    // An application's description and metadata.
    let (status, app) = s
        .post(
            "/api/v1/applications",
            json!({"name":"described","description":"ours","metadata":{"tier":"gold"}}),
        )
        .await;
    assert_eq!(
        (status, &app["description"], &app["metadata"]),
        (201, &json!("ours"), &json!({"tier":"gold"}))
    );
    let app_url = s.url(&format!("/api/v1/applications/{}", app["token"].as_str().unwrap()));
    let (status, app) =
        s.send(s.http.patch(app_url.clone()).json(&json!({"metadata":{"tier":"silver"}}))).await;
    assert_eq!(
        (status, &app["metadata"], &app["description"]),
        (200, &json!({"tier":"silver"}), &json!("ours"))
    );
    let (status, answer) = s.send(s.http.patch(app_url).json(&json!({"metadata":[1]}))).await;
    assert_eq!((status, code(&answer)), (422, "invalid_field"));
    let (status, answer) = s.post("/api/v1/applications", json!({"name":"x","metadata":big})).await;
    assert_eq!((status, code(&answer)), (422, "invalid_field"));
}

async fn each_role_rule_is_allowed_and_refused(s: &TestServer) {
    let token = s.new_app().await;
    let chat = group(s, &token, "olga", &[("adam", "admin"), ("mia", "member"), ("ned", "member")]).await;
    let mut olga = connect(s, &token, "olga").await;
    let mut adam = connect(s, &token, "adam").await;
    let mut mia = connect(s, &token, "mia").await;
    let before = roles(s, &token, chat).await;

    // A member: no member changes, no edits of the chat, no roles.
    let id = json!("m");
    for (frame, needs) in [
        (
            json!({"type":"add_members","id":"m","chat":chat,"users":["zoe"]}),
            "adding members needs the admin or owner role",
        ),
        (
            json!({"type":"remove_member","id":"m","chat":chat,"user":"ned"}),
            "removing members needs the admin or owner role",
        ),
        (
            json!({"type":"update_chat","id":"m","chat":chat,"name":"mine"}),
            "editing the chat needs the admin or owner role",
        ),
        (
            json!({"type":"set_role","id":"m","chat":chat,"user":"mia","role":"admin"}),
            "making or unmaking admins needs the owner role",
        ),
        (
            json!({"type":"set_role","id":"m","chat":chat,"user":"ned","role":"owner"}),
            "making or unmaking owners needs the owner role",
        ),
        (
            json!({"type":"leave","id":"m","chat":chat,"successor":"ned"}),
            "naming a successor needs the owner role",
        ),
    ] {
        assert_forbidden(&ask(&mut mia, frame).await, &id, needs);
    }
    // Nothing half-applied: the members, roles and the chat are as they were.
    assert_eq!(roles(s, &token, chat).await, before);
    assert_eq!(s.get(&chat_path(&token, chat)).await.1["name"], "crew");

    // An admin: adds and removes members, edits the chat...
    let ack = ask(&mut adam, json!({"type":"add_members","id":1,"chat":chat,"users":["zoe","mia"]})).await;
    assert_eq!(ack, json!({"type":"ack","id":1,"chat":chat}));
    let joined = expect(&mut mia, "member_joined").await;
    assert_eq!(joined, json!({"type":"member_joined","chat":chat,"user":"zoe","role":"member"}));
    let ack =
        ask(&mut adam, json!({"type":"update_chat","id":2,"chat":chat,"name":"crew 2","metadata":{"a":1}}))
            .await;
    assert_eq!(ack, json!({"type":"ack","id":2,"chat":chat}));
    let updated = expect(&mut olga, "chat_updated").await;
    assert_eq!((&updated["name"], &updated["metadata"]), (&json!("crew 2"), &json!({"a":1})), "{updated}");
    let ack = ask(&mut adam, json!({"type":"remove_member","id":3,"chat":chat,"user":"zoe"})).await;
    assert_eq!(ack, json!({"type":"ack","id":3,"chat":chat}));
    let left = expect(&mut mia, "member_left").await;
    assert_eq!(left, json!({"type":"member_left","chat":chat,"user":"zoe"}));
    // ...deletes another member's message...
    let sent =
        ask(&mut mia, json!({"type":"send","id":4,"chat":chat,"body":"oops","client_msg_id":"c4"})).await;
    let seq = sent["seq"].as_u64().unwrap();
    let ack = ask(&mut adam, json!({"type":"delete","id":5,"chat":chat,"seq":seq})).await;
    assert_eq!(ack, json!({"type":"ack","id":5,"chat":chat,"seq":seq}));
    // (a member may not: it is another's message)
    let sent =
        ask(&mut adam, json!({"type":"send","id":6,"chat":chat,"body":"mine","client_msg_id":"c6"})).await;
    let theirs = sent["seq"].as_u64().unwrap();
    let answer = ask(&mut mia, json!({"type":"delete","id":"d","chat":chat,"seq":theirs})).await;
    assert_forbidden(&answer, &json!("d"), "deleting another member's message needs the admin or owner role");
    // (and nobody edits another's message, whatever their role)
    let answer = ask(&mut olga, json!({"type":"edit","id":"e","chat":chat,"seq":theirs,"body":"x"})).await;
    assert_forbidden(&answer, &json!("e"), "only its author");
    // ...but makes and unmakes no admins and removes no owner or admin.
    let id = json!("a");
    for (frame, needs) in [
        (
            json!({"type":"set_role","id":"a","chat":chat,"user":"mia","role":"admin"}),
            "making or unmaking admins needs the owner role",
        ),
        (
            json!({"type":"set_role","id":"a","chat":chat,"user":"adam","role":"member"}),
            "making or unmaking admins needs the owner role",
        ),
        (
            json!({"type":"set_role","id":"a","chat":chat,"user":"mia","role":"owner"}),
            "making or unmaking owners needs the owner role",
        ),
        (
            json!({"type":"remove_member","id":"a","chat":chat,"user":"olga"}),
            "removing an owner needs the owner role",
        ),
    ] {
        assert_forbidden(&ask(&mut adam, frame).await, &id, needs);
    }
    assert_eq!(roles(s, &token, chat).await, before);

    // An owner: everything; roles go both ways.
    let ack = ask(&mut olga, json!({"type":"set_role","id":7,"chat":chat,"user":"mia","role":"admin"})).await;
    assert_eq!(ack, json!({"type":"ack","id":7,"chat":chat}));
    let changed = expect(&mut adam, "role_changed").await;
    assert_eq!(changed, json!({"type":"role_changed","chat":chat,"user":"mia","role":"admin"}));
    // An admin does not remove another admin (that unmakes one).
    let answer = ask(&mut adam, json!({"type":"remove_member","id":"r","chat":chat,"user":"mia"})).await;
    assert_forbidden(&answer, &json!("r"), "removing an admin needs the owner role");
    let ack =
        ask(&mut olga, json!({"type":"set_role","id":8,"chat":chat,"user":"adam","role":"member"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // adam is a member now: refused at once.
    let answer = ask(&mut adam, json!({"type":"add_members","id":"x","chat":chat,"users":["zoe"]})).await;
    assert_forbidden(&answer, &json!("x"), "adding members needs the admin or owner role");
    let ack = ask(&mut olga, json!({"type":"remove_member","id":9,"chat":chat,"user":"mia"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(
        roles(s, &token, chat).await,
        pairs(&[("adam", "member"), ("ned", "member"), ("olga", "owner")])
    );

    // Bad input: each gets its stated error, and changes nothing.
    let id = json!("b");
    let long = "n".repeat(201);
    for (frame, expected) in [
        (json!({"type":"add_members","id":"b","chat":chat,"users":[]}), "invalid_frame"),
        (json!({"type":"add_members","id":"b","chat":chat,"users":["a b"]}), "invalid_frame"),
        (json!({"type":"add_members","id":"b","chat":chat}), "invalid_frame"),
        (json!({"type":"set_role","id":"b","chat":chat,"user":"ned","role":"king"}), "invalid_frame"),
        (json!({"type":"set_role","id":"b","chat":chat,"user":"ned"}), "invalid_frame"),
        (json!({"type":"remove_member","id":"b","chat":chat,"user":""}), "invalid_frame"),
        (json!({"type":"update_chat","id":"b","chat":chat}), "invalid_frame"),
        (json!({"type":"update_chat","id":"b","chat":chat,"metadata":[1]}), "invalid_frame"),
        (json!({"type":"update_chat","id":"b","chat":chat,"name":"x","extra":1}), "invalid_frame"),
        (json!({"type":"leave","id":"b","chat":"one"}), "invalid_frame"),
        (json!({"type":"update_chat","id":"b","chat":chat,"name":long}), "invalid_field"),
        (
            json!({"type":"update_chat","id":"b","chat":chat,"metadata":{"k":"v".repeat(4_100)}}),
            "invalid_field",
        ),
        (json!({"type":"remove_member","id":"b","chat":chat,"user":"nobody"}), "member_not_found"),
        (json!({"type":"set_role","id":"b","chat":chat,"user":"nobody","role":"admin"}), "member_not_found"),
        (json!({"type":"remove_member","id":"b","chat":chat,"user":"olga"}), "invalid_field"),
        (json!({"type":"leave","id":"b","chat":chat,"successor":"nobody"}), "member_not_found"),
        (json!({"type":"leave","id":"b","chat":chat,"successor":"olga"}), "invalid_field"),
        (json!({"type":"update_chat","id":"b","chat":chat + 100,"name":"x"}), "chat_not_found"),
    ] {
        assert_error(&ask(&mut olga, frame.clone()).await, &id, expected);
    }
    let answer = ask(&mut mia, json!({"type":"update_chat","id":"b","chat":chat,"name":"x"})).await;
    assert_error(&answer, &id, "not_a_member");
    assert_eq!(
        roles(s, &token, chat).await,
        pairs(&[("adam", "member"), ("ned", "member"), ("olga", "owner")])
    );
    assert_eq!(s.get(&chat_path(&token, chat)).await.1["name"], "crew 2");
}

async fn the_last_owner_leaves_only_with_a_successor(s: &TestServer) {
    let token = s.new_app().await;
    let chat = group(s, &token, "olga", &[("adam", "admin"), ("mia", "member")]).await;
    let mut olga = connect(s, &token, "olga").await;
    let mut mia = connect(s, &token, "mia").await;

    let answer = ask(&mut olga, json!({"type":"leave","id":1,"chat":chat})).await;
    assert_forbidden(&answer, &json!(1), "the last owner cannot leave without naming a `successor`");
    let answer =
        ask(&mut olga, json!({"type":"set_role","id":2,"chat":chat,"user":"olga","role":"admin"})).await;
    assert_forbidden(&answer, &json!(2), "the last owner cannot be demoted");
    assert_eq!(
        roles(s, &token, chat).await,
        pairs(&[("adam", "admin"), ("mia", "member"), ("olga", "owner")])
    );

    let ack = ask(&mut olga, json!({"type":"leave","id":3,"chat":chat,"successor":"mia"})).await;
    assert_eq!(ack, json!({"type":"ack","id":3,"chat":chat}));
    assert_eq!(
        expect(&mut mia, "role_changed").await,
        json!({"type":"role_changed","chat":chat,"user":"mia","role":"owner"})
    );
    assert_eq!(
        expect(&mut mia, "member_left").await,
        json!({"type":"member_left","chat":chat,"user":"olga"})
    );
    assert_eq!(roles(s, &token, chat).await, pairs(&[("adam", "admin"), ("mia", "owner")]));
    // The one who left is no member any more.
    let answer = ask(&mut olga, json!({"type":"sync","id":4,"chat":chat,"after":0})).await;
    assert_error(&answer, &json!(4), "not_a_member");

    // With two owners, either may leave without naming anyone; a member may always leave.
    let ack = ask(&mut mia, json!({"type":"set_role","id":5,"chat":chat,"user":"adam","role":"owner"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ack = ask(&mut mia, json!({"type":"leave","id":6,"chat":chat})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(roles(s, &token, chat).await, pairs(&[("adam", "owner")]));
    // The last owner alone leaves freely: nobody is left to hand over to.
    let mut adam = connect(s, &token, "adam").await;
    let ack = ask(&mut adam, json!({"type":"leave","id":7,"chat":chat})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(roles(s, &token, chat).await.is_empty());
}

async fn a_removed_member_hears_nothing_more_on_any_node(s: &TestServer) {
    let token = s.new_app().await;
    let chat = group(s, &token, "olga", &[]).await;
    // In spread mode each client is on its own node: the owner acts on the
    // first, the removed member listens on the second, the sender on the third.
    let mut olga = connect(s, &token, "olga").await;
    let mut vic = connect(s, &token, "vic").await;
    let mut sam = connect(s, &token, "sam").await;
    let ack = ask(&mut olga, json!({"type":"add_members","id":1,"chat":chat,"users":["vic","sam"]})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // vic hears the chat while a member.
    let sent =
        ask(&mut sam, json!({"type":"send","id":2,"chat":chat,"body":"hello all","client_msg_id":"c2"}))
            .await;
    let seq = sent["seq"].as_u64().unwrap();
    assert_message(&expect(&mut vic, "message").await, chat, seq, "hello all");
    // A direct chat of sam and vic, the marker channel below.
    let sent =
        ask(&mut sam, json!({"type":"send","id":3,"recipients":["vic"],"body":"psst","client_msg_id":"c3"}))
            .await;
    let direct = sent["chat"].as_u64().unwrap();
    assert_message(&expect(&mut vic, "message").await, direct, sent["seq"].as_u64().unwrap(), "psst");

    let ack = ask(&mut olga, json!({"type":"remove_member","id":4,"chat":chat,"user":"vic"})).await;
    assert_eq!(ack, json!({"type":"ack","id":4,"chat":chat}));
    // The removed member hears of it themselves...
    assert_eq!(expect(&mut vic, "member_left").await, json!({"type":"member_left","chat":chat,"user":"vic"}));
    // ...and then nothing of the chat: sam sends to the group right after the
    // removal's ack, then to the direct chat. Frames from sam's node arrive in
    // order, so vic's next frame being the second proves the first never came.
    let sent =
        ask(&mut sam, json!({"type":"send","id":5,"chat":chat,"body":"vic is gone","client_msg_id":"c5"}))
            .await;
    let gone = sent["seq"].as_u64().unwrap();
    let marker =
        ask(&mut sam, json!({"type":"send","id":6,"chat":direct,"body":"marker","client_msg_id":"c6"})).await;
    let next = vic.next().await;
    assert_message(&next, direct, marker["seq"].as_u64().unwrap(), "marker");
    // The others still hear the chat.
    assert_message(&expect(&mut olga, "message").await, chat, gone, "vic is gone");
    // And the removed member cannot read or send it any more.
    let answer = ask(&mut vic, json!({"type":"sync","id":7,"chat":chat,"after":0})).await;
    assert_error(&answer, &json!(7), "not_a_member");
    let answer =
        ask(&mut vic, json!({"type":"send","id":8,"chat":chat,"body":"hey","client_msg_id":"c8"})).await;
    assert_error(&answer, &json!(8), "not_a_member");
    vic.nothing().await;
}

async fn direct_chats_take_no_members_and_no_roles(s: &TestServer) {
    let token = s.new_app().await;
    let mut ann = connect(s, &token, "ann").await;
    let sent =
        ask(&mut ann, json!({"type":"send","id":1,"recipients":["ben"],"body":"hi","client_msg_id":"c1"}))
            .await;
    let direct = sent["chat"].as_u64().unwrap();
    let id = json!("d");
    for frame in [
        json!({"type":"add_members","id":"d","chat":direct,"users":["cat"]}),
        json!({"type":"remove_member","id":"d","chat":direct,"user":"ben"}),
        json!({"type":"set_role","id":"d","chat":direct,"user":"ben","role":"admin"}),
        json!({"type":"leave","id":"d","chat":direct}),
    ] {
        let answer = ask(&mut ann, frame).await;
        assert_error(&answer, &id, "invalid_field");
        assert!(answer["message"].as_str().unwrap().contains("direct chat"), "{answer}");
    }
    let url = s.url(&format!("{}/members/ben", chat_path(&token, direct)));
    let (status, answer) = s.send(s.http.put(url.clone()).json(&json!({"role":"owner"}))).await;
    assert_eq!((status, code(&answer)), (422, "invalid_field"), "{answer}");
    let (status, answer) = s.send(s.http.delete(url)).await;
    assert_eq!((status, code(&answer)), (422, "invalid_field"), "{answer}");
    assert_eq!(roles(s, &token, direct).await, pairs(&[("ann", "member"), ("ben", "member")]));
    let (_, shown) = s.get(&chat_path(&token, direct)).await;
    assert_eq!((&shown["kind"], &shown["created_by"]), (&json!("direct"), &Value::Null));
    // Either member may name a direct chat (it has no admins).
    let ack = ask(&mut ann, json!({"type":"update_chat","id":2,"chat":direct,"name":"us"})).await;
    assert_eq!(ack, json!({"type":"ack","id":2,"chat":direct}));

    // A group a user's send creates is owned by the sender.
    let sent = ask(
        &mut ann,
        json!({"type":"send","id":3,"recipients":["ben","cat"],"body":"all","client_msg_id":"c3"}),
    )
    .await;
    let made = sent["chat"].as_u64().unwrap();
    assert_eq!(
        roles(s, &token, made).await,
        pairs(&[("ann", "owner"), ("ben", "member"), ("cat", "member")])
    );
    assert_eq!(s.get(&chat_path(&token, made)).await.1["created_by"], "ann");
}
