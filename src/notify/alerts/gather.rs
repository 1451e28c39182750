//! Gathering a chat's messages for `coalesce_ms`, then deciding, once per
//! chat, which away members get a push and which an email check.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Alert, Ctx};
use crate::ids::{AppId, ChatNumber, Timestamp, UserId};
use crate::model::{ChatLevel, Page};
use crate::notify::queue::{Entry, Lane, Sink};

/// What one chat's window gathered.
#[derive(Default)]
struct Pending {
    count: u64,
    /// The newest of them (its preview is made once, when the window closes).
    last: Option<Arc<crate::model::Message>>,
    senders: BTreeSet<Option<UserId>>,
    mentions: BTreeSet<UserId>,
    /// The members the newest message's fan-out read, if it did.
    members: Option<Arc<[UserId]>>,
}

/// One push entry: a window's messages of a chat for one user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct PushItem {
    /// Messages in the window.
    pub(super) count: u64,
    /// The newest of them.
    pub(super) seq: u64,
    /// Its sender.
    pub(super) sender: Option<String>,
    /// Its first characters.
    pub(super) preview: String,
    /// Whether one of them mentions the user.
    pub(super) mentioned: bool,
}

/// Runs until `shutdown`, then flushes what it gathered.
pub(super) async fn run(
    mut rx: mpsc::Receiver<Alert>,
    ctx: Arc<Ctx>,
    period: Duration,
    shutdown: CancellationToken,
) {
    let mut pending: HashMap<(AppId, ChatNumber), Pending> = HashMap::new();
    let mut buf = Vec::with_capacity(1024);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut buf, 1024) => {
                if n == 0 {
                    break;
                }
                for alert in buf.drain(..) {
                    merge(&mut pending, alert);
                }
            }
            _ = tick.tick() => {
                for ((app, chat), p) in std::mem::take(&mut pending) {
                    flush(&ctx, &app, chat, p).await;
                }
            }
            () = shutdown.cancelled() => {
                while let Ok(alert) = rx.try_recv() {
                    merge(&mut pending, alert);
                }
                break;
            }
        }
    }
    for ((app, chat), p) in pending {
        flush(&ctx, &app, chat, p).await;
    }
}

fn merge(pending: &mut HashMap<(AppId, ChatNumber), Pending>, alert: Alert) {
    let m = &alert.message;
    let p = pending.entry((m.app.clone(), m.chat)).or_default();
    p.count += 1;
    if p.last.as_ref().is_none_or(|last| m.number >= last.number) {
        p.last = Some(Arc::clone(m));
        if alert.members.is_some() {
            p.members = alert.members;
        }
    }
    p.senders.insert(m.sender.clone());
    p.mentions.extend(crate::model::mentions(&m.body));
}

/// The chat's members, at most `max` (`None`: more than that).
async fn members(ctx: &Ctx, app: &AppId, chat: ChatNumber) -> Option<Vec<UserId>> {
    const PAGE: usize = 1_000;
    let mut all = Vec::new();
    loop {
        let page = Page { skip: all.len(), limit: PAGE };
        let got = match ctx.prefs.store().members(app, chat, page).await {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a chat's members for notifications");
                return Some(all);
            }
        };
        let n = got.len();
        all.extend(got.into_iter().map(|m| m.user));
        if all.len() > ctx.config.max_members {
            return None;
        }
        if n < PAGE {
            return Some(all);
        }
    }
}

async fn flush(ctx: &Ctx, app: &AppId, chat: ChatNumber, mut p: Pending) {
    let m = crate::metrics::metrics();
    // The fan-out's list when it came with the messages: no store read per window.
    let members = match p.members.take() {
        Some(list) if list.len() <= ctx.config.max_members => Some(list.to_vec()),
        Some(_) => None,
        None => members(ctx, app, chat).await,
    };
    let Some(members) = members else {
        m.alerts_skipped.with_label_values(&["large_chat"]).inc();
        return;
    };
    // A member who alone sent the window's messages has nothing to hear about.
    let only_sender = match p.senders.iter().collect::<Vec<_>>().as_slice() {
        [Some(one)] => Some((*one).clone()),
        _ => None,
    };
    let candidates: Vec<UserId> = members.into_iter().filter(|u| Some(u) != only_sender.as_ref()).collect();
    let online = ctx.fabric.online_among(app, &candidates).await;
    // A window holds at least one message (`merge` made it).
    let Some(last) = p.last.take() else { return };
    let mut preview: Option<String> = None;
    let now = Timestamp::now().millis();
    let mut pushes = Vec::new();
    for (user, online) in candidates.iter().zip(online) {
        if online {
            continue;
        }
        let settings = match ctx.prefs.settings(app, user).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read notification settings");
                continue;
            }
        };
        let mentioned = p.mentions.contains(user);
        match settings.level(chat) {
            ChatLevel::None => {
                m.alerts_skipped.with_label_values(&["muted"]).inc();
                continue;
            }
            ChatLevel::Mentions if !mentioned => {
                m.alerts_skipped.with_label_values(&["not_mentioned"]).inc();
                continue;
            }
            ChatLevel::Mentions | ChatLevel::All => {}
        }
        if settings.email && settings.email_address.is_some() {
            let lane = Lane { app: app.clone(), sink: Sink::Email, key: user.as_str().to_owned() };
            let entry = Entry {
                id: format!("email_{}", crate::ids::random_url_safe(12)),
                kind: "email".into(),
                at: now,
                body: String::new(),
            };
            let due = now.saturating_add(i64::try_from(ctx.config.email_after_ms).unwrap_or(i64::MAX));
            if let Err(e) = ctx.queue.push_once(&lane, &entry, due).await {
                tracing::warn!(error = %e, "cannot queue an email check");
            }
        }
        if !settings.push {
            m.alerts_skipped.with_label_values(&["push_off"]).inc();
            continue;
        }
        if let Some(quiet) = &settings.quiet_hours
            && super::prefs::is_quiet(quiet, now)
        {
            m.alerts_skipped.with_label_values(&["quiet_hours"]).inc();
            continue;
        }
        match ctx.prefs.devices(app, user).await {
            Ok(devices) if devices.is_empty() => {
                m.alerts_skipped.with_label_values(&["no_device"]).inc();
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a user's devices");
                continue;
            }
        }
        let item = PushItem {
            count: p.count,
            seq: last.number.get(),
            sender: last.sender.as_ref().map(|u| u.as_str().to_owned()),
            preview: preview.get_or_insert_with(|| super::preview(&last.body)).clone(),
            mentioned,
        };
        let lane = Lane { app: app.clone(), sink: Sink::Push, key: format!("{user}|{chat}") };
        let entry = Entry {
            id: format!("push_{}", crate::ids::random_url_safe(12)),
            kind: "push".into(),
            at: now,
            body: serde_json::to_string(&item).unwrap_or_default(),
        };
        pushes.push((lane, entry));
    }
    if pushes.is_empty() {
        return;
    }
    m.alerts_queued.inc_by(pushes.len() as u64);
    match ctx.queue.push(&pushes, now).await {
        Ok(()) => ctx.wake.notify_waiters(),
        Err(e) => {
            m.alerts_dropped.inc_by(pushes.len() as u64);
            tracing::warn!(error = %e, "cannot queue push notifications");
        }
    }
}
