//! The demo application: made once, then the same one across restarts.
//!
//! Its token is either configured (`demo.app_token`, shared by the nodes of a
//! cluster) or kept in a file beside the embedded store, written the first
//! time a page signs in. Until then nothing is created, so a node whose demo
//! nobody opens has no demo application.

use std::path::{Path, PathBuf};

use tokio::sync::OnceCell;

use super::DemoConfig;
use crate::chat::{ChatError, ChatService};
use crate::ids::{AppId, AppToken};

/// The file under `store.data_dir` that keeps a created demo application's token.
const TOKEN_FILE: &str = "demo-app.token";

/// The name the demo application is created with.
const APP_NAME: &str = "weft demo";

/// Why the demo application cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum DemoAppError {
    /// The domain failed (the store, say) while reading or creating it.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// The configured `demo.app_token` names no application.
    #[error("demo.app_token names no application")]
    UnknownConfiguredApp,
    /// The token file could not be read or written.
    #[error("cannot keep the demo application's token in {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Where the token comes from.
#[derive(Clone, Debug)]
enum Source {
    /// `demo.app_token`.
    Configured(AppToken),
    /// `<data_dir>/demo-app.token`, created on first use.
    File(PathBuf),
}

/// The demo application, found or made on first use; cheap to share.
#[derive(Debug)]
pub struct DemoApp {
    source: Source,
    /// The token and the id, once known (a failed attempt is tried again next time).
    known: OnceCell<(AppToken, AppId)>,
}

impl DemoApp {
    /// The demo application `config` names, or the one kept under `data_dir`.
    pub fn new(config: &DemoConfig, data_dir: &Path) -> Self {
        let source = if config.app_token.is_empty() {
            Source::File(data_dir.join(TOKEN_FILE))
        } else {
            Source::Configured(AppToken::new(config.app_token.clone()))
        };
        Self { source, known: OnceCell::new() }
    }

    /// The demo application's token and id, creating it the first time.
    pub async fn get(&self, chat: &ChatService) -> Result<&(AppToken, AppId), DemoAppError> {
        self.known.get_or_try_init(|| self.find_or_create(chat)).await
    }

    async fn find_or_create(&self, chat: &ChatService) -> Result<(AppToken, AppId), DemoAppError> {
        let path = match &self.source {
            Source::Configured(token) => {
                return match chat.application(token).await {
                    Ok(app) => Ok((token.clone(), app.id)),
                    Err(ChatError::ApplicationNotFound) => Err(DemoAppError::UnknownConfiguredApp),
                    Err(e) => Err(e.into()),
                };
            }
            Source::File(path) => path.clone(),
        };
        if let Some(token) = read_token(&path).await? {
            match chat.application(&token).await {
                Ok(app) => return Ok((token, app.id)),
                // The store was reset under a kept file: make a new one.
                Err(ChatError::ApplicationNotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let view = chat.create_application(APP_NAME.to_owned(), None, Default::default()).await?;
        let (token, id) = (view.app.token, view.app.id);
        write_token(&path, &token).await?;
        tracing::info!(app = id.as_str(), "created the demo application");
        Ok((token, id))
    }
}

async fn read_token(path: &Path) -> Result<Option<AppToken>, DemoAppError> {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(owned)).await;
    let failed = |source| DemoAppError::TokenFile { path: path.to_path_buf(), source };
    match read.map_err(|e| failed(std::io::Error::other(e)))? {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(AppToken::new(text.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(failed(e)),
    }
}

/// Writes the token readable by the node's user only, in one rename.
async fn write_token(path: &Path, token: &AppToken) -> Result<(), DemoAppError> {
    let (owned, text) = (path.to_path_buf(), token.as_str().to_owned());
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = owned.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = owned.with_extension("token.partial");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&partial)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, &owned)
    })
    .await;
    let failed = |source| DemoAppError::TokenFile { path: path.to_path_buf(), source };
    written.map_err(|e| failed(std::io::Error::other(e)))?.map_err(failed)
}
