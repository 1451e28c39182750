//! Email: the unread digest, rendered as plain text and HTML and sent by SMTP.
//!
//! Who gets a digest and when is decided elsewhere; this module turns a
//! [`Digest`] into a message ([`render`]) and hands it to an SMTP server
//! ([`EmailSender::send_digest`]), classifying failures as worth a retry or
//! not ([`EmailError`]). Every digest carries an unsubscribe link in both
//! bodies and in the `List-Unsubscribe` header (RFC 2369) with one-click
//! unsubscription (RFC 8058); its token is an HMAC of the application and the
//! user ([`unsubscribe_token`], [`check_unsubscribe_token`]), so the endpoint
//! that honours it keeps no state.
//!
//! Nothing here logs a body or a whole address: [`mask_address`] is what
//! appears in logs and errors.

use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

type HmacSha256 = Hmac<Sha256>;

/// A digest shows at most this many first lines per chat.
pub const LINES_PER_CHAT: usize = 3;
/// A digest lists at most this many chats (its subject counts them all).
pub const MAX_CHATS: usize = 10;
/// A first line is cut to this many characters (an ellipsis marks the cut).
pub const LINE_CHARS: usize = 140;
/// Names (of the application, the user, a chat, a sender) are cut to this many characters.
pub const NAME_CHARS: usize = 64;
/// The longest address [`check_address`] accepts, in bytes (RFC 5321's path minus its brackets).
pub const MAX_ADDRESS_LEN: usize = 254;
/// Where the unsubscribe endpoint is, under [`EmailConfig::public_url`].
pub const UNSUBSCRIBE_PATH: &str = "/api/v1/unsubscribe";

/// `[email]` in the config: the SMTP server digests go through.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// The SMTP server as a URL; empty turns email off. `smtp://host:25` is
    /// plain SMTP (tests, a relay on the same host), `smtps://user:pass@host:465`
    /// implicit TLS, `smtp://user:pass@host:587?tls=required` STARTTLS (the
    /// connection fails if the server does not offer it). User and password
    /// are percent-encoded; a path (`smtp://host/mail.example.com`) is the
    /// name sent in EHLO (default: `[127.0.0.1]`). Certificates are checked
    /// against the webpki (Mozilla) roots.
    pub smtp_url: String,
    /// The `From` of every digest, a mailbox: `weft <notify@example.com>` or
    /// `notify@example.com`. Its domain also names the `Message-ID`s.
    pub from: String,
    /// The public base URL of the chat (`https://chat.example.com`, a path
    /// prefix allowed): digests link to it, and their unsubscribe links are
    /// `{public_url}/api/v1/unsubscribe?app=…&user=…&token=…`.
    pub public_url: String,
    /// The HMAC key of unsubscribe tokens. Empty: a random key is made when
    /// the process starts, so links work only as long as that process runs
    /// and only on the node that sent them; every node of a cluster needs the
    /// same configured key, kept as long as sent digests should unsubscribe.
    /// Changing it voids every link sent before.
    pub unsubscribe_secret: String,
    /// One send (connect, TLS, login, the message, quit) may take this long,
    /// in ms; it also bounds each step.
    pub timeout_ms: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_url: String::new(),
            from: String::new(),
            public_url: String::new(),
            unsubscribe_secret: String::new(),
            timeout_ms: 30_000,
        }
    }
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_url", &redact_url(&self.smtp_url))
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .field("unsubscribe_secret", &if self.unsubscribe_secret.is_empty() { "" } else { "<redacted>" })
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// `smtp_url` with its password replaced, for logs.
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Cannot fail on a URL that has a password (it has a host).
                let _ = url.set_password(Some("redacted"));
            }
            url.to_string()
        }
        Err(_) if raw.is_empty() => String::new(),
        Err(_) => "<not a URL>".to_owned(),
    }
}

impl EmailConfig {
    /// Whether email is on (`smtp_url` is set).
    pub fn enabled(&self) -> bool {
        !self.smtp_url.is_empty()
    }

    /// Checks what types alone cannot: `(key, reason)` of the first problem.
    /// Email off is always fine.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !self.enabled() {
            return Ok(());
        }
        match url::Url::parse(&self.smtp_url) {
            Ok(url) if matches!(url.scheme(), "smtp" | "smtps") && url.host_str().is_some() => {
                let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
                if !matches!(tls.as_deref(), None | Some("required" | "opportunistic")) {
                    return Err(("email.smtp_url", "tls= must be `required` or `opportunistic`"));
                }
            }
            _ => return Err(("email.smtp_url", "must be smtp://host[:port] or smtps://host[:port]")),
        }
        if self.from.parse::<Mailbox>().is_err() {
            return Err(("email.from", "must be an address or `Name <address>`"));
        }
        match url::Url::parse(&self.public_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
            _ => return Err(("email.public_url", "must be an http:// or https:// URL")),
        }
        if self.timeout_ms == 0 {
            return Err(("email.timeout_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// What went wrong sending an email.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The recipient is not an address we can send to.
    #[error("invalid email address")]
    InvalidAddress,
    /// A failure that may pass: no connection, a timeout, TLS or network
    /// trouble, a 4xx reply. Send again later.
    #[error("email not sent, worth a retry: {0}")]
    Retry(String),
    /// The server refused for good (a 5xx reply, an address it cannot take):
    /// sending the same message again would fail again.
    #[error("email rejected: {0}")]
    Rejected(String),
    /// The configuration is wrong (the URL, `from`, the login, TLS the server
    /// does not offer): no email goes out until it is fixed.
    #[error("email misconfigured: {0}")]
    Config(String),
}

// ---------------------------------------------------------------------------------------------
// the digest

/// One user's unread digest: what [`render`] turns into an email.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Digest {
    /// The application's name, as the user knows it (in the subject and the bodies).
    pub app_name: String,
    /// Who the digest is for, as greeted ("Hi …"): a display name or the user id.
    pub user: String,
    /// The chats with unread messages, in the order to show them.
    pub chats: Vec<ChatDigest>,
    /// The user's unsubscribe link ([`unsubscribe_url`]); empty: the digest
    /// has no link and no `List-Unsubscribe` header.
    pub unsubscribe_url: String,
}

/// One chat in a [`Digest`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatDigest {
    /// The chat's number.
    pub chat: u64,
    /// The chat's name, if it has one (else it shows as "Chat N").
    pub name: Option<String>,
    /// How many messages the user has not read in it.
    pub unread: u64,
    /// The oldest unread messages, oldest first (at most [`LINES_PER_CHAT`]
    /// are shown; more is fine).
    pub first_lines: Vec<Line>,
}

/// One message in a [`ChatDigest`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Line {
    /// Who sent it (a display name or the user id).
    pub sender: String,
    /// Its text (cut to [`LINE_CHARS`] characters, on one line).
    pub text: String,
}

/// A rendered digest.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The subject: "3 unread messages in 2 chats — App".
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body (everything that came from users escaped).
    pub html: String,
}

/// `s` on one line, without control or bidi-override characters, at most
/// `max` characters (the last one an ellipsis when it was cut).
pub fn clip(s: &str, max: usize) -> String {
    let is_bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut count = 0;
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        let word = word.chars().filter(|&c| !is_bidi(c));
        if count > 0 {
            if count + 1 > max {
                return ellipsize(out, max);
            }
            out.push(' ');
            count += 1;
        }
        for c in word {
            if count + 1 > max {
                return ellipsize(out, max);
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// `out` (already `max` characters long, more to come) made to end in an ellipsis.
fn ellipsize(mut out: String, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    out.pop();
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('…');
    out
}

/// `thing` or `things`, for `n` of them.
fn plural(n: u64, one: &str) -> String {
    if n == 1 { one.to_owned() } else { format!("{one}s") }
}

/// `n thing` or `n things`.
fn count(n: u64, one: &str) -> String {
    format!("{n} {}", plural(n, one))
}

/// HTML-escapes `s` for text and for quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One chat as shown: its label, its unread count, its shown lines and how many more.
struct ShownChat {
    label: String,
    unread: u64,
    lines: Vec<(String, String)>,
    more: u64,
}

fn shown_chat(chat: &ChatDigest) -> ShownChat {
    let name = chat.name.as_deref().map(|n| clip(n, NAME_CHARS)).filter(|n| !n.is_empty());
    let lines: Vec<(String, String)> = chat
        .first_lines
        .iter()
        .take(LINES_PER_CHAT)
        .map(|l| (clip(&l.sender, NAME_CHARS), clip(&l.text, LINE_CHARS)))
        .collect();
    let shown = u64::try_from(lines.len()).unwrap_or(u64::MAX);
    ShownChat {
        label: name.unwrap_or_else(|| format!("Chat {}", chat.chat)),
        unread: chat.unread,
        more: chat.unread.saturating_sub(shown),
        lines,
    }
}

/// Renders `digest`: its subject and both bodies. `open_url` (the chat's
/// public URL; empty: none) is linked as the place to read the messages.
pub fn render(digest: &Digest, open_url: &str) -> Rendered {
    let app = clip(&digest.app_name, NAME_CHARS);
    let user = clip(&digest.user, NAME_CHARS);
    let total = digest.chats.iter().fold(0u64, |n, c| n.saturating_add(c.unread));
    let chats = u64::try_from(digest.chats.len()).unwrap_or(u64::MAX);
    let summary = format!("{} in {}", count(total, "unread message"), count(chats, "chat"));
    let subject = if app.is_empty() { summary.clone() } else { format!("{summary} — {app}") };
    let shown: Vec<ShownChat> = digest.chats.iter().take(MAX_CHATS).map(shown_chat).collect();
    let hidden_chats = chats.saturating_sub(u64::try_from(shown.len()).unwrap_or(u64::MAX));
    let unsubscribe = digest.unsubscribe_url.as_str();
    let on_app = if app.is_empty() { String::new() } else { format!(" on {app}") };

    // Plain text. (`write!` to a String cannot fail.)
    let mut text = String::new();
    let _ = writeln!(text, "Hi {user},\n\nyou have {summary}{on_app}.\n");
    for chat in &shown {
        let _ = writeln!(text, "{} ({} unread)", chat.label, chat.unread);
        for (sender, line) in &chat.lines {
            let _ = writeln!(text, "  {sender}: {line}");
        }
        if chat.more > 0 {
            let _ = writeln!(text, "  … and {} more", chat.more);
        }
        text.push('\n');
    }
    if hidden_chats > 0 {
        let _ = writeln!(
            text,
            "… and {hidden_chats} more {} with unread messages.\n",
            plural(hidden_chats, "chat")
        );
    }
    if !open_url.is_empty() {
        let _ = writeln!(text, "Read them: {open_url}\n");
    }
    let _ = writeln!(
        text,
        "-- \nYou get this email because you had unread messages{on_app} while you were away."
    );
    if !unsubscribe.is_empty() {
        let _ = writeln!(text, "Unsubscribe from these emails: {unsubscribe}");
    }

    // HTML: everything that is not ours is escaped.
    let e = escape_html;
    let muted = "color:#6b7280";
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title></head>\n\
         <body style=\"font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#111827;\
         max-width:600px;margin:0 auto;padding:16px\">\n\
         <p>Hi {},</p>\n<p>you have <strong>{}</strong>{}.</p>\n",
        e(&subject),
        e(&user),
        e(&summary),
        e(&on_app),
    );
    for chat in &shown {
        let _ = write!(
            html,
            "<h3 style=\"margin:20px 0 6px\">{} <span style=\"{muted};font-weight:normal\">({} unread)</span></h3>\n\
             <ul style=\"margin:0;padding-left:20px\">\n",
            e(&chat.label),
            chat.unread,
        );
        for (sender, line) in &chat.lines {
            let _ = writeln!(html, "<li><strong>{}</strong>: {}</li>", e(sender), e(line));
        }
        if chat.more > 0 {
            let _ = writeln!(html, "<li style=\"{muted}\">… and {} more</li>", chat.more);
        }
        html.push_str("</ul>\n");
    }
    if hidden_chats > 0 {
        let _ = writeln!(
            html,
            "<p style=\"{muted}\">… and {hidden_chats} more {} with unread messages.</p>",
            plural(hidden_chats, "chat")
        );
    }
    if !open_url.is_empty() {
        let _ = writeln!(html, "<p><a href=\"{}\">Read them</a></p>", e(open_url));
    }
    let _ = write!(
        html,
        "<hr style=\"border:none;border-top:1px solid #e5e7eb;margin-top:24px\">\n\
         <p style=\"{muted};font-size:12px\">You get this email because you had unread messages{} while you \
         were away.",
        e(&on_app),
    );
    if !unsubscribe.is_empty() {
        let _ = write!(html, " <a href=\"{}\" style=\"{muted}\">Unsubscribe</a>", e(unsubscribe));
    }
    html.push_str("</p>\n</body></html>\n");

    Rendered { subject, text, html }
}

// ---------------------------------------------------------------------------------------------
// unsubscribe tokens

/// The unsubscribe token of `user` in `app` under `secret`: the URL-safe
/// base64 of HMAC-SHA256 over a label and both ids (length-prefixed, so no
/// two pairs sign alike). It does not expire: it lasts as long as the secret.
pub fn unsubscribe_token(secret: &[u8], app: &str, user: &str) -> String {
    use base64::Engine as _;
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(b"weft-unsubscribe-v1\0");
    mac.update(&u64::try_from(app.len()).unwrap_or(u64::MAX).to_be_bytes());
    mac.update(app.as_bytes());
    mac.update(user.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `token` is [`unsubscribe_token`]`(secret, app, user)`, compared in
/// constant time. An empty secret verifies nothing.
pub fn check_unsubscribe_token(secret: &[u8], app: &str, user: &str, token: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let expected = unsubscribe_token(secret, app, user);
    bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
}

/// `{public_url}/api/v1/unsubscribe?app=…&user=…&token=…` (the query
/// form-encoded; a trailing slash of `public_url` dropped).
pub fn unsubscribe_url(public_url: &str, secret: &[u8], app: &str, user: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("app", app)
        .append_pair("user", user)
        .append_pair("token", &unsubscribe_token(secret, app, user))
        .finish();
    format!("{}{UNSUBSCRIBE_PATH}?{query}", public_url.trim_end_matches('/'))
}

// ---------------------------------------------------------------------------------------------
// addresses

/// Whether `s` is an address digests can go to (what the API checks before
/// storing one): an `local@domain` of at most [`MAX_ADDRESS_LEN`] bytes, no
/// display name. The reason names no part of the address.
pub fn check_address(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.len() > MAX_ADDRESS_LEN {
        return Err(format!("is longer than {MAX_ADDRESS_LEN} bytes"));
    }
    s.parse::<Address>()
        .map(|_| ())
        .map_err(|e| format!("is not a valid address ({})", e.to_string().to_lowercase()))
}

/// `s` for logs: the local part cut to its first character (`a…@example.com`).
pub fn mask_address(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}…@{}", clip(domain, NAME_CHARS))
        }
        None => "…".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// sending

/// Sends digests through the configured SMTP server. Each send opens its own
/// connection (no pool): digests are few and far between.
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
    secret: Vec<u8>,
    timeout: Duration,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from.to_string())
            .field("public_url", &self.public_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EmailSender {
    /// A sender for `config`; `None` when email is off (`smtp_url` empty).
    /// Connects to nothing yet: a wrong host shows at the first send.
    pub fn new(config: &EmailConfig) -> Result<Option<EmailSender>, EmailError> {
        if !config.enabled() {
            return Ok(None);
        }
        config.check().map_err(|(key, reason)| EmailError::Config(format!("{key} {reason}")))?;
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| EmailError::Config(format!("email.from is not a mailbox: {e}")))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|e| EmailError::Config(format!("email.smtp_url: {e}")))?
            .timeout(Some(timeout))
            .build();
        let secret = if config.unsubscribe_secret.is_empty() {
            rand::random::<[u8; 32]>().to_vec()
        } else {
            config.unsubscribe_secret.as_bytes().to_vec()
        };
        Ok(Some(EmailSender {
            transport,
            from,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            secret,
            timeout,
        }))
    }

    /// The public base URL digests link to (no trailing slash).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The unsubscribe link of `user` in `app`, for [`Digest::unsubscribe_url`].
    pub fn unsubscribe_url(&self, app: &str, user: &str) -> String {
        unsubscribe_url(&self.public_url, &self.secret, app, user)
    }

    /// Whether `token` unsubscribes `user` in `app` under this sender's secret.
    pub fn check_unsubscribe(&self, app: &str, user: &str, token: &str) -> bool {
        check_unsubscribe_token(&self.secret, app, user, token)
    }

    /// The email `digest` makes for `to`.
    fn message(&self, to: &str, digest: &Digest) -> Result<Message, EmailError> {
        check_address(to).map_err(|_| EmailError::InvalidAddress)?;
        let to: Address = to.parse().map_err(|_| EmailError::InvalidAddress)?;
        let rendered = render(digest, &self.public_url);
        let message_id = format!("<{}@{}>", crate::ids::random_url_safe(18), self.from.email.domain());
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(rendered.subject)
            .message_id(Some(message_id))
            // RFC 3834: no out-of-office replies to a digest.
            .raw_header(header("Auto-Submitted", "auto-generated".to_owned()));
        if !digest.unsubscribe_url.is_empty() {
            builder = builder
                .raw_header(header("List-Unsubscribe", format!("<{}>", digest.unsubscribe_url)))
                .raw_header(header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".to_owned()));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
            .map_err(|e| EmailError::Config(format!("cannot build the message: {e}")))
    }

    /// Sends `digest` to `to`. [`EmailError::Retry`] is worth another try
    /// later; the other errors are not (for this address, or at all).
    pub async fn send_digest(&self, to: &str, digest: &Digest) -> Result<(), EmailError> {
        let message = self.message(to, digest)?;
        let sent = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        match sent {
            Ok(Ok(_)) => {
                tracing::debug!(to = %mask_address(to), chats = digest.chats.len(), "email digest sent");
                Ok(())
            }
            Ok(Err(e)) => {
                let error = classify(&e, to);
                tracing::debug!(to = %mask_address(to), error = %error, "email digest not sent");
                Err(error)
            }
            Err(_) => Err(EmailError::Retry(format!("no answer within {} ms", self.timeout.as_millis()))),
        }
    }
}

/// A header lettre encodes (RFC 2047 and folding, if ever needed).
fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// What a failed send means for the caller. The server's words are kept (cut
/// short), the recipient's address masked in them.
fn classify(e: &lettre::transport::smtp::Error, to: &str) -> EmailError {
    let mut message = e.to_string();
    if !to.is_empty() {
        message = message.replace(to, &mask_address(to));
    }
    let message = clip(&message, 300);
    if let Some(code) = e.status() {
        // 530 authentication required, 534 mechanism too weak, 535 bad credentials,
        // 538 encryption required: the login is wrong, not this message.
        if e.is_permanent() {
            return match code.to_string().as_str() {
                "530" | "534" | "535" | "538" => EmailError::Config(message),
                _ => EmailError::Rejected(message),
            };
        }
        return EmailError::Retry(message);
    }
    if e.is_client() {
        // An address only an SMTPUTF8 server takes: this recipient, not the setup.
        if message.contains("SMTPUTF8") {
            return EmailError::Rejected(message);
        }
        // STARTTLS required but not offered, no common login mechanism, ...
        return EmailError::Config(message);
    }
    // Connection, network, TLS, timeouts, garbled replies.
    EmailError::Retry(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sender: &str, text: &str) -> Line {
        Line { sender: sender.into(), text: text.into() }
    }

    fn digest() -> Digest {
        Digest {
            app_name: "Acme".into(),
            user: "Ann".into(),
            chats: vec![
                ChatDigest {
                    chat: 7,
                    name: Some("General".into()),
                    unread: 5,
                    first_lines: vec![
                        line("bob", "one"),
                        line("cy", "two"),
                        line("bob", "three"),
                        line("x", "four"),
                    ],
                },
                ChatDigest { chat: 9, name: None, unread: 1, first_lines: vec![line("dee", "hi")] },
            ],
            unsubscribe_url: "https://chat.example.com/api/v1/unsubscribe?app=a&user=u&token=t".into(),
        }
    }

    #[test]
    fn the_subject_counts_messages_and_chats_in_singular_and_plural() {
        assert_eq!(render(&digest(), "").subject, "6 unread messages in 2 chats — Acme");
        let mut one = digest();
        one.chats.truncate(1);
        one.chats[0].unread = 1;
        assert_eq!(render(&one, "").subject, "1 unread message in 1 chat — Acme");
        one.app_name = String::new();
        assert_eq!(render(&one, "").subject, "1 unread message in 1 chat");
        one.app_name = "Evil\r\nBcc: x@example.com".into();
        assert_eq!(render(&one, "").subject, "1 unread message in 1 chat — Evil Bcc: x@example.com");
    }

    #[test]
    fn a_chat_shows_three_lines_and_how_many_more() {
        let r = render(&digest(), "https://chat.example.com");
        assert!(
            r.text.contains("General (5 unread)\n  bob: one\n  cy: two\n  bob: three\n  … and 2 more\n"),
            "{}",
            r.text
        );
        assert!(!r.text.contains("four"));
        assert!(r.text.contains("Chat 9 (1 unread)\n  dee: hi\n\n"), "{}", r.text);
        assert!(r.text.contains("Read them: https://chat.example.com\n"));
        assert!(
            r.text.contains("Unsubscribe from these emails: https://chat.example.com/api/v1/unsubscribe?")
        );
        assert!(r.html.contains("<li style=\"color:#6b7280\">… and 2 more</li>"), "{}", r.html);
        assert!(r.html.contains("<li><strong>dee</strong>: hi</li>"));
        assert!(
            r.html.contains(
                "href=\"https://chat.example.com/api/v1/unsubscribe?app=a&amp;user=u&amp;token=t\""
            )
        );
    }

    #[test]
    fn more_than_ten_chats_are_summed_up() {
        let mut d = digest();
        d.chats = (1..=13).map(|n| ChatDigest { chat: n, unread: 1, ..Default::default() }).collect();
        let r = render(&d, "");
        assert_eq!(r.subject, "13 unread messages in 13 chats — Acme");
        assert!(r.text.contains("Chat 10 (1 unread)"));
        assert!(!r.text.contains("Chat 11 "));
        assert!(r.text.contains("\n… and 3 more chats with unread messages.\n"), "{}", r.text);
        d.chats.truncate(11);
        assert!(render(&d, "").html.contains("… and 1 more chat with unread messages."));
    }

    #[test]
    fn lines_are_cut_to_one_short_line() {
        let long = "word ".repeat(100);
        let cut = clip(&long, LINE_CHARS);
        assert!(cut.chars().count() <= LINE_CHARS && cut.chars().count() > LINE_CHARS - 6, "{cut}");
        assert!(cut.ends_with("word…") || cut.ends_with("wor…"), "{cut}");
        assert_eq!(clip("a\n\n b\tc\u{0}d\u{202e}e", 140), "a b c de");
        assert_eq!(clip("héllo wörld", 5), "héll…");
        assert_eq!(clip("hello world", 7), "hello…");
        assert_eq!(clip("short", 5), "short");
        assert_eq!(clip("", 5), "");
        let mut d = digest();
        d.chats[0].first_lines[0].text = "é".repeat(500);
        let r = render(&d, "");
        let shown = r.text.lines().find(|l| l.starts_with("  bob: é")).unwrap();
        assert_eq!(shown.chars().count(), "  bob: ".len() + LINE_CHARS);
    }

    #[test]
    fn everything_from_users_is_escaped_in_html() {
        let mut d = digest();
        d.app_name = "<b>App</b>".into();
        d.user = "Ann \"<img>\"".into();
        d.chats[0].name = Some("<script>alert(1)</script>".into());
        d.chats[0].first_lines[0] = line("<i>bob</i>", "<script>alert('x')</script> & more");
        d.unsubscribe_url = "https://x.example/?a=\"><script>".into();
        let r = render(&d, "https://chat.example.com/?q=\"'");
        for raw in ["<script>", "<b>App", "<img>", "<i>bob", "\"><script", "'\">"] {
            assert!(!r.html.contains(raw), "{raw} in {}", r.html);
        }
        assert!(r.html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(r.html.contains("Hi Ann &quot;&lt;img&gt;&quot;,"));
        assert!(r.html.contains("href=\"https://x.example/?a=&quot;&gt;&lt;script&gt;\""));
        // The text body is text: shown as written.
        assert!(r.text.contains("<i>bob</i>: <script>alert('x')</script> & more"));
    }

    #[test]
    fn tokens_verify_for_their_pair_and_secret_only() {
        let t = unsubscribe_token(b"k", "app", "user");
        assert_eq!(t.len(), 43);
        assert!(check_unsubscribe_token(b"k", "app", "user", &t));
        assert!(!check_unsubscribe_token(b"k2", "app", "user", &t));
        assert!(!check_unsubscribe_token(b"k", "app", "user2", &t));
        assert!(!check_unsubscribe_token(b"k", "appu", "ser", &unsubscribe_token(b"k", "app", "user")));
        assert_ne!(unsubscribe_token(b"k", "appu", "ser"), t);
        assert!(!check_unsubscribe_token(b"k", "app", "user", ""));
        assert!(!check_unsubscribe_token(b"", "app", "user", &unsubscribe_token(b"", "app", "user")));
        let url = unsubscribe_url("https://c.example/base/", b"k", "a p", "ü&=");
        assert_eq!(
            url,
            format!(
                "https://c.example/base/api/v1/unsubscribe?app=a+p&user=%C3%BC%26%3D&token={}",
                unsubscribe_token(b"k", "a p", "ü&=")
            )
        );
    }

    #[test]
    fn addresses_are_checked_and_masked() {
        assert!(check_address("ann@example.com").is_ok());
        assert!(check_address("a.b+tag@sub.example.co").is_ok());
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "Ann <ann@example.com>",
            " ann@example.com",
            "a b@example.com",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(check_address(&long).unwrap_err().contains("254"));
        assert_eq!(mask_address("ann@example.com"), "a…@example.com");
        assert_eq!(mask_address("nope"), "…");
    }

    fn config() -> EmailConfig {
        EmailConfig {
            smtp_url: "smtp://127.0.0.1:1025".into(),
            from: "weft <notify@example.com>".into(),
            public_url: "https://chat.example.com/".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_config_is_checked_and_its_secrets_kept_out_of_debug() {
        assert!(EmailConfig::default().check().is_ok());
        assert!(EmailSender::new(&EmailConfig::default()).unwrap().is_none());
        assert!(config().check().is_ok());
        for (edit, key) in [
            (
                (|c: &mut EmailConfig| c.smtp_url = "http://x".into()) as fn(&mut EmailConfig),
                "email.smtp_url",
            ),
            (|c| c.smtp_url = "smtp://x?tls=maybe".into(), "email.smtp_url"),
            (|c| c.from = "not an address".into(), "email.from"),
            (|c| c.public_url = String::new(), "email.public_url"),
            (|c| c.timeout_ms = 0, "email.timeout_ms"),
        ] {
            let mut c = config();
            edit(&mut c);
            assert_eq!(c.check().unwrap_err().0, key);
            assert!(matches!(EmailSender::new(&c), Err(EmailError::Config(_))));
        }
        let mut c = config();
        c.smtp_url = "smtps://user:hunter2@smtp.example.com:465".into();
        c.unsubscribe_secret = "s3cret".into();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("smtps://user:redacted@smtp.example.com:465"), "{shown}");
    }

    #[test]
    fn a_message_has_the_headers_and_both_bodies() {
        let mut c = config();
        c.unsubscribe_secret = "k".into();
        let sender = EmailSender::new(&c).unwrap().unwrap();
        assert_eq!(sender.public_url(), "https://chat.example.com");
        let mut d = digest();
        d.unsubscribe_url = sender.unsubscribe_url("app1", "u1");
        assert!(
            d.unsubscribe_url
                .starts_with("https://chat.example.com/api/v1/unsubscribe?app=app1&user=u1&token=")
        );
        let token = d.unsubscribe_url.rsplit_once("token=").unwrap().1;
        assert!(sender.check_unsubscribe("app1", "u1", token));
        let formatted =
            String::from_utf8(sender.message("ann@example.com", &d).unwrap().formatted()).unwrap();
        assert!(formatted.contains(&format!("List-Unsubscribe: <{}>\r\n", d.unsubscribe_url)), "{formatted}");
        assert!(formatted.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
        assert!(formatted.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(formatted.contains("@example.com>\r\n"), "a Message-ID in the sender's domain");
        assert!(formatted.contains("multipart/alternative"));
        d.unsubscribe_url = String::new();
        let formatted =
            String::from_utf8(sender.message("ann@example.com", &d).unwrap().formatted()).unwrap();
        assert!(!formatted.contains("List-Unsubscribe"));
        assert!(matches!(sender.message("ann", &d), Err(EmailError::InvalidAddress)));
    }
}
