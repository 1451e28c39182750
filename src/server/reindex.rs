//! `weft reindex`: rebuilds the search index from the store, resumably.
//!
//! It walks the applications (one, with `--app`), their chats (one, with
//! `--chat`) and each chat's messages in number order, indexing a window of
//! messages per call. After each window it writes a checkpoint file (the
//! scope and where it got to); run again with the same scope, it skips what
//! the checkpoint says is done. A finished run removes the file. Indexing is
//! idempotent (a document per message), so a window redone after a crash
//! changes nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StartError, open_search, open_store};
use crate::config::Config;
use crate::ids::{AppId, AppToken, ChatNumber, MessageNumber, Timestamp};
use crate::model::MessageRange;
use crate::search::{SearchDoc, SearchError};
use crate::store::{DynStore, StoreError};

/// Messages read and indexed per call.
const WINDOW: u64 = 1_000;
/// Application ids listed per store call.
const APPS_PAGE: usize = 100;

/// What to rebuild.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// One application (by token), or all.
    pub app: Option<String>,
    /// One chat of that application, or all.
    pub chat: Option<u64>,
}

/// How far a run got.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Messages indexed (this run).
    pub indexed: u64,
    /// Messages in scope (the chats' highest numbers, summed).
    pub total: u64,
    /// Messages skipped as done by an earlier run.
    pub resumed: u64,
}

/// Why a reindex stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// The store or index could not be opened.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The node has no search index (`[search] backend`).
    #[error("search is off in this config ([search] backend); nothing to rebuild")]
    NoIndex,
    /// `--app` names no application.
    #[error("no application has this token")]
    UnknownApp,
    /// `--chat` without `--app`.
    #[error("--chat needs --app")]
    ChatWithoutApp,
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The index failed.
    #[error("the search index failed")]
    Index(#[from] SearchError),
    /// The checkpoint file could not be read or written.
    #[error("checkpoint file {path}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The checkpoint: the scope, and the position reached in walking order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    scope: Scope,
    app: String,
    chat: u64,
    /// Every message of `chat` up to this number is indexed.
    seq: u64,
}

/// Rebuilds the index `config` names over `scope`, calling `progress` after
/// every window; resumes from (and keeps) the checkpoint at `checkpoint`.
pub async fn reindex(
    config: &Config,
    scope: Scope,
    checkpoint: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<Progress, ReindexError> {
    if scope.chat.is_some() && scope.app.is_none() {
        return Err(ReindexError::ChatWithoutApp);
    }
    let store = open_store(config).await?;
    let index = open_search(config).await?.ok_or(ReindexError::NoIndex)?;
    let resume = read_checkpoint(checkpoint)?.filter(|c| c.scope == scope);
    let chats = chats_in_scope(&store, &scope).await?;
    let mut state = Progress::default();
    for (_, _, newest) in &chats {
        state.total += newest;
    }
    // Chats before the checkpoint's are done; its own chat resumes after `seq`.
    let mut skipping = resume.is_some();
    let horizon =
        Timestamp::now().millis() - i64::try_from(config.search.commit_horizon_ms).unwrap_or(i64::MAX);
    for (app, chat, newest) in chats {
        let mut from = 0;
        if skipping && let Some(resume) = &resume {
            if resume.app == app.as_str() && resume.chat == chat.get() {
                skipping = false;
                from = resume.seq;
                state.resumed += resume.seq;
            } else {
                state.resumed += newest;
                continue;
            }
        }
        let mut marked = 0;
        while from < newest {
            let range = MessageRange::window(from, WINDOW);
            let messages = store.messages(&app, chat, range).await?;
            let docs: Vec<SearchDoc> =
                messages.iter().filter(|m| !m.is_deleted()).map(SearchDoc::from).collect();
            index.index(&docs).await?;
            if let Some(old) =
                messages.iter().filter(|m| m.created_at.millis() < horizon).map(|m| m.number.get()).max()
            {
                marked = marked.max(old);
            }
            from = from.saturating_add(WINDOW).min(newest);
            state.indexed += docs.len() as u64;
            let at = Checkpoint {
                scope: scope.clone(),
                app: app.as_str().to_owned(),
                chat: chat.get(),
                seq: from,
            };
            write_checkpoint(checkpoint, &at)?;
            progress(state);
        }
        if marked > 0 {
            index.mark_indexed(&app, chat, MessageNumber(marked)).await?;
        }
    }
    match std::fs::remove_file(checkpoint) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ReindexError::Checkpoint { path: checkpoint.to_owned(), source }),
    }
    progress(state);
    Ok(state)
}

/// Every chat in scope with its newest number, in walking order.
async fn chats_in_scope(
    store: &DynStore,
    scope: &Scope,
) -> Result<Vec<(AppId, ChatNumber, u64)>, ReindexError> {
    let apps = match &scope.app {
        Some(token) => {
            let app = store.application_by_token(&AppToken::new(token.clone())).await?;
            vec![app.ok_or(ReindexError::UnknownApp)?.id]
        }
        None => {
            let mut apps = Vec::new();
            loop {
                let page = store.application_ids(apps.last(), APPS_PAGE).await?;
                let done = page.len() < APPS_PAGE;
                apps.extend(page);
                if done {
                    break;
                }
            }
            apps
        }
    };
    let mut chats = Vec::new();
    for app in apps {
        let numbers: Vec<u64> = match scope.chat {
            Some(chat) => vec![chat],
            None => (1..=store.max_chat_number(&app).await?).collect(),
        };
        for number in numbers {
            let chat = ChatNumber(number);
            let newest = store.max_message_number(&app, chat).await?;
            chats.push((app.clone(), chat, newest));
        }
    }
    Ok(chats)
}

fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>, ReindexError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReindexError::Checkpoint { path: path.to_owned(), source }),
    }
}

/// Writes the checkpoint beside itself and renames it over: never half a file.
fn write_checkpoint(path: &Path, at: &Checkpoint) -> Result<(), ReindexError> {
    let err = |source| ReindexError::Checkpoint { path: path.to_owned(), source };
    let bytes = serde_json::to_vec(at).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
