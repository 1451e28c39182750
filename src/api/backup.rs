//! `GET /api/v1/backup`: a consistent copy of a serving node's embedded store.
//!
//! The running node holds the redb file's lock, so a backup is taken by the
//! node itself (why an HTTP endpoint and not a signal: docs/design.md). The
//! snapshot is written to a file in the data directory first, so a failure is
//! an error status rather than a cut-off body; the file is unlinked as soon
//! as it is opened and streamed from the open handle.

use std::io::Read;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use super::openapi::{INTERNAL, UNAVAILABLE};
use crate::chat::ChatError;
use crate::store::{BackupError, EmbeddedStore, StoreError};

/// Bytes read from the snapshot per body chunk.
const CHUNK: usize = 256 * 1024;

/// What a node needs to take backups: its embedded store and where to stage them.
#[derive(Clone)]
pub struct Snapshots {
    /// The store being served.
    pub store: EmbeddedStore,
    /// The data directory (the snapshot is staged there: same disk as the store).
    pub dir: PathBuf,
}

/// `GET /api/v1/backup`.
#[utoipa::path(
    get,
    path = "/api/v1/backup",
    operation_id = "backup_store",
    tag = "operations",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The embedded store as of one commit (a redb file), taken while the node serves; put it in place with `weft restore`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "`unauthorized`: no admin key was sent"),
        (status = 403, description = "`forbidden`: the key sent is not the admin key, or the node has none configured (a backup holds every application's secrets, so it is never open)"),
        (status = 404, description = "`backup_unavailable`: the node runs on the CQL store (back that up with its own tools)"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn backup(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if state.admin_key.is_none() {
        return Err(ApiError::Forbidden);
    }
    state.check_admin(&headers)?;
    let Some(snapshots) = &state.snapshots else { return Err(ApiError::NotFound("backup_unavailable")) };
    let path = snapshots.dir.join(format!(".backup-{:016x}.redb", rand::random::<u64>()));
    let taken = snapshots.store.backup(&path).await;
    let opened = taken.and_then(|rows| {
        let file =
            std::fs::File::open(&path).map_err(|source| BackupError::Io { path: path.clone(), source })?;
        Ok((rows, file))
    });
    // Unlinked at once: the open handle keeps the data until the body is sent.
    let _ = std::fs::remove_file(&path);
    let (rows, file) = opened.map_err(failed)?;
    let size = file.metadata().map(|m| m.len()).ok();
    tracing::info!(rows, bytes = size, "backup taken");
    let mut response = Body::from_stream(chunks(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"weft.redb\""));
    if let Some(size) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    Ok(response)
}

/// A backup failure as the API answers it: the store's own errors as they are, the rest internal.
fn failed(e: BackupError) -> ApiError {
    let store = match e {
        BackupError::Store(e) => e,
        BackupError::UnknownTable(_) => StoreError::Corrupt { what: "a table this weft does not know" },
        other => StoreError::Embedded(Box::new(other)),
    };
    ApiError::Chat(ChatError::Store(store))
}

/// The file's bytes, read on the blocking pool a chunk at a time (at most
/// four chunks ahead of the client).
fn chunks(mut file: std::fs::File) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0; CHUNK];
        loop {
            let chunk = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                break;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) })
}
