//! Email digests through a real SMTP server (Mailpit, from `scripts/services.sh`),
//! read back through its HTTP API: subject, from, to, both bodies (users' HTML
//! escaped), the unsubscribe link and its token, the List-Unsubscribe headers,
//! a login taken from the URL. And how failures are classified: a bad address,
//! a closed port, a server that does not answer, 4xx and 5xx replies and a
//! refused login (a scripted SMTP server in the test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::mail::{delete, mailpit_api, received, unique_address};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use weft::notify::email::{
    ChatDigest, Digest, EmailConfig, EmailError, EmailSender, Line, check_unsubscribe_token, render,
};

fn config(smtp_url: &str, secret: &str) -> EmailConfig {
    EmailConfig {
        smtp_url: smtp_url.to_owned(),
        from: "Weft Test <notify@weft.test>".to_owned(),
        public_url: "https://chat.example.com/".to_owned(),
        unsubscribe_secret: secret.to_owned(),
        timeout_ms: 10_000,
    }
}

fn line(sender: &str, text: &str) -> Line {
    Line { sender: sender.to_owned(), text: text.to_owned() }
}

fn digest(sender: &EmailSender, app: &str, user: &str) -> Digest {
    Digest {
        app_name: "Acme Chat".to_owned(),
        user: "Zoë".to_owned(),
        chats: vec![
            ChatDigest {
                chat: 3,
                name: Some("<script>alert('room')</script>".to_owned()),
                unread: 5,
                first_lines: vec![
                    line("mallory", "<script>alert(\"x\")</script> & <b>bold</b>"),
                    line("bob", "Grüße — see you at 10 ☕"),
                    line("carol", &"long ".repeat(60)),
                    line("dave", "the fourth, not shown"),
                ],
            },
            ChatDigest { chat: 8, name: None, unread: 1, first_lines: vec![line("erin", "ping")] },
        ],
        unsubscribe_url: sender.unsubscribe_url(app, user),
    }
}

/// The value of `name` in the query of `url`.
fn query_param(url: &str, name: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[tokio::test]
async fn a_digest_arrives_with_its_bodies_links_and_headers() {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let (smtp, api) = mailpit_api(&http).await;
    let secret = format!("test-secret-{:016x}", rand::random::<u64>());
    let sender = EmailSender::new(&config(&smtp, &secret)).unwrap().expect("email is on");
    let (app, user) = ("app_123", "user <42> & co");
    let digest = digest(&sender, app, user);
    let to = unique_address();

    sender.send_digest(&to, &digest).await.unwrap();
    let msg = received(&http, &api, &to).await;

    // Envelope and headers as sent.
    assert_eq!(msg["Subject"], "6 unread messages in 2 chats — Acme Chat");
    assert_eq!(msg["Subject"], render(&digest, "").subject.as_str());
    assert_eq!(msg["From"]["Name"], "Weft Test");
    assert_eq!(msg["From"]["Address"], "notify@weft.test");
    assert_eq!(msg["To"].as_array().unwrap().len(), 1);
    assert_eq!(msg["To"][0]["Address"], to.as_str());
    assert!(msg["MessageID"].as_str().unwrap().ends_with("@weft.test"), "{}", msg["MessageID"]);

    // The text body: every chat with its count and first lines, as written.
    let text = msg["Text"].as_str().unwrap().replace("\r\n", "\n");
    assert!(text.starts_with("Hi Zoë,\n\nyou have 6 unread messages in 2 chats on Acme Chat.\n"), "{text}");
    let long = format!("  carol: {}…\n", "long ".repeat(28).trim_end());
    let first_chat = format!(
        "<script>alert('room')</script> (5 unread)\n  mallory: <script>alert(\"x\")</script> & <b>bold</b>\n  \
         bob: Grüße — see you at 10 ☕\n{long}  … and 2 more\n"
    );
    assert!(text.contains(&first_chat), "{text}");
    assert!(!text.contains("fourth"), "a fourth line is not shown: {text}");
    assert!(text.contains("Chat 8 (1 unread)\n  erin: ping\n"), "{text}");
    assert!(text.contains("Read them: https://chat.example.com\n"), "{text}");

    // The HTML body: users' markup escaped, ours intact.
    let html = msg["HTML"].as_str().unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<b>bold"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;room&#39;)&lt;/script&gt;"), "{html}");
    assert!(html.contains("<strong>mallory</strong>: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"), "{html}");
    assert!(html.contains("<strong>bob</strong>: Grüße — see you at 10 ☕"), "{html}");
    assert!(html.contains("… and 2 more"), "{html}");

    // One unsubscribe link, in both bodies and the header, whose token verifies.
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("Unsubscribe from these emails: "))
        .expect("an unsubscribe line in the text body")
        .to_owned();
    assert_eq!(link, digest.unsubscribe_url);
    assert!(link.starts_with("https://chat.example.com/api/v1/unsubscribe?app=app_123&user="), "{link}");
    assert!(html.contains(&format!("<a href=\"{}\"", link.replace('&', "&amp;"))), "{html}");
    assert_eq!(query_param(&link, "app"), app);
    assert_eq!(query_param(&link, "user"), user);
    let token = query_param(&link, "token");
    assert!(check_unsubscribe_token(secret.as_bytes(), app, user, &token));
    assert!(sender.check_unsubscribe(app, user, &token));
    assert!(!check_unsubscribe_token(secret.as_bytes(), app, "someone else", &token));
    assert!(!check_unsubscribe_token(b"another secret", app, user, &token));

    // RFC 2369 and RFC 8058, as Mailpit parses them and as raw headers.
    assert_eq!(msg["ListUnsubscribe"]["Links"], serde_json::json!([link]), "{}", msg["ListUnsubscribe"]);
    assert_eq!(msg["ListUnsubscribe"]["HeaderPost"], "List-Unsubscribe=One-Click");
    assert_eq!(msg["ListUnsubscribe"]["Errors"], "");
    let id = msg["ID"].as_str().unwrap();
    let headers: Value =
        http.get(format!("{api}/api/v1/message/{id}/headers")).send().await.unwrap().json().await.unwrap();
    assert_eq!(headers["List-Unsubscribe"], serde_json::json!([format!("<{link}>")]), "{headers}");
    assert_eq!(
        headers["List-Unsubscribe-Post"],
        serde_json::json!(["List-Unsubscribe=One-Click"]),
        "{headers}"
    );
    assert_eq!(headers["Auto-Submitted"], serde_json::json!(["auto-generated"]), "{headers}");

    delete(&http, &api, &to).await;
}

#[tokio::test]
async fn a_login_in_the_url_is_used() {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let (smtp, api) = mailpit_api(&http).await;
    // Mailpit (as services.sh starts it) takes any login, also without TLS.
    let with_login = smtp.replacen("smtp://", "smtp://digest-user:p%40ss@", 1);
    let sender = EmailSender::new(&config(&with_login, "k")).unwrap().unwrap();
    let to = unique_address();
    let mut one = digest(&sender, "app", "u");
    one.chats.truncate(1);
    one.chats[0].unread = 1;
    one.chats[0].first_lines.truncate(1);
    sender.send_digest(&to, &one).await.unwrap();
    let msg = received(&http, &api, &to).await;
    assert_eq!(msg["Username"], "digest-user");
    assert_eq!(msg["Subject"], "1 unread message in 1 chat — Acme Chat");
    delete(&http, &api, &to).await;
}

#[tokio::test]
async fn an_invalid_address_is_refused_before_any_connection() {
    // A port nothing listens on: an address check that connected would say Retry.
    let sender = EmailSender::new(&config(&format!("smtp://127.0.0.1:{}", closed_port().await), "k"))
        .unwrap()
        .unwrap();
    let d = digest(&sender, "app", "u");
    let too_long = format!("{}@example.com", "a".repeat(250));
    for bad in [
        "",
        "nobody",
        "two@at@example.com",
        "Ann <ann@example.com>",
        "ann@example.com\r\nBcc: x@y.z",
        &too_long,
    ] {
        let err = sender.send_digest(bad, &d).await.unwrap_err();
        assert!(matches!(err, EmailError::InvalidAddress), "{bad:?}: {err:?}");
    }
}

/// A loopback port nothing listens on (bound, then let go).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_closed_port_is_worth_a_retry() {
    let port = closed_port().await;
    let sender = EmailSender::new(&config(&format!("smtp://127.0.0.1:{port}"), "k")).unwrap().unwrap();
    let err = sender.send_digest("ann@example.com", &digest(&sender, "app", "u")).await.unwrap_err();
    assert!(matches!(err, EmailError::Retry(_)), "{err:?}");
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_worth_a_retry() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, never greets.
    let _server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut c = config(&format!("smtp://127.0.0.1:{port}"), "k");
    c.timeout_ms = 300;
    let sender = EmailSender::new(&c).unwrap().unwrap();
    let started = std::time::Instant::now();
    let err = sender.send_digest("ann@example.com", &digest(&sender, "app", "u")).await.unwrap_err();
    assert!(matches!(err, EmailError::Retry(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// A scripted SMTP server on loopback: greets, takes EHLO and MAIL, answers
/// `auth` to AUTH and `rcpt` to RCPT TO. Returns its URL.
async fn scripted_server(auth: &'static str, rcpt: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 scripted ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let reply = match verb.as_str() {
                        "EHLO" => "250-scripted\r\n250 AUTH PLAIN LOGIN\r\n".to_owned(),
                        "AUTH" => format!("{auth}\r\n"),
                        "MAIL" => "250 2.1.0 ok\r\n".to_owned(),
                        "RCPT" => format!("{rcpt}\r\n"),
                        "RSET" | "NOOP" => "250 ok\r\n".to_owned(),
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => "502 5.5.2 not here\r\n".to_owned(),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("smtp://user:pass@127.0.0.1:{port}")
}

#[tokio::test]
async fn replies_are_classified_and_the_address_is_masked_in_them() {
    let to = "victim.person@example.com";
    let kind = |e: &EmailError| match e {
        EmailError::InvalidAddress => "invalid address",
        EmailError::Retry(_) => "retry",
        EmailError::Rejected(_) => "rejected",
        EmailError::Config(_) => "config",
    };
    let cases = [
        ("235 2.7.0 ok", "550 5.1.1 <victim.person@example.com>: no such user", "rejected"),
        ("235 2.7.0 ok", "452 4.2.2 <victim.person@example.com>: mailbox full", "retry"),
        ("235 2.7.0 ok", "421 4.7.0 try again later", "retry"),
        ("535 5.7.8 authentication credentials invalid", "250 ok", "config"),
    ];
    for (auth, rcpt, expected) in cases {
        let url = scripted_server(auth, rcpt).await;
        let sender = EmailSender::new(&config(&url, "k")).unwrap().unwrap();
        let err = sender.send_digest(to, &digest(&sender, "app", "u")).await.unwrap_err();
        assert_eq!(kind(&err), expected, "AUTH {auth:?}, RCPT {rcpt:?}: {err:?}");
        let shown = err.to_string();
        assert!(!shown.contains("victim.person"), "{shown}");
        if rcpt.contains("victim") && !auth.starts_with('5') {
            assert!(shown.contains("v…@example.com"), "{shown}");
        }
    }
}
