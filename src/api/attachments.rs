//! `POST …/chats/:number/attachments` (an upload for the backend), and the
//! node's own signed file routes `PUT|GET /files/<key>` (filesystem backend).

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::input::{Input, Resource};
use super::params::{PathParams, chat_number, token};
use crate::attachments::{LocalAccess, Signed};
use crate::chat::{Author, NewUpload};
use crate::protocol::UploadOut;

/// The body of upload requests.
pub struct UploadBody;

impl Resource for UploadBody {
    const ROOT: &'static str = "attachment";
}

/// `POST …/chats/:number/attachments {"name","content_type","size","created_by"?}`
/// → 201 `{"id","upload_url","expires_at"}`.
pub async fn create(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
    Input(fields, _): Input<UploadBody>,
) -> Result<(StatusCode, Json<UploadOut>), ApiError> {
    let number = chat_number(&number)?;
    let name = fields.required_string("name", crate::chat::MAX_ATTACHMENT_NAME)?;
    let content_type = fields.required_string("content_type", 255)?;
    let size = fields.required_u64("size", 1, u64::MAX)?;
    let created_by = fields.optional_user("created_by")?;
    let app = state.chat.application(&token(raw)).await?;
    let new = NewUpload { name, content_type, size };
    let upload = state.chat.create_upload(&app.id, &Author::Backend(created_by), number, new).await?;
    let out = UploadOut { id: upload.id, upload_url: upload.upload_url, expires_at: upload.expires_at };
    Ok((StatusCode::CREATED, Json(out)))
}

/// The query of a signed file URL.
#[derive(Deserialize)]
pub struct SignedQuery {
    expires: i64,
    size: u64,
    ct: String,
    sig: String,
}

fn checked<'a>(
    state: &ApiState,
    method: &'a Method,
    key: &'a str,
    q: &'a SignedQuery,
) -> Result<object_store::path::Path, ApiError> {
    let what = Signed { method: method.as_str(), key, expires: q.expires, size: q.size, content_type: &q.ct };
    match state.chat.attachments().verify_local(&what, &q.sig) {
        Ok(()) => {}
        Err(LocalAccess::NotServed) => return Err(ApiError::NotFound("not_found")),
        Err(LocalAccess::Refused(e)) => return Err(ApiError::SignedUrl(e)),
    }
    object_store::path::Path::parse(key).map_err(|_| ApiError::NotFound("not_found"))
}

/// `PUT /files/<key>?expires&size&ct&sig`: the bytes of an upload, exactly
/// the declared size, with the declared `Content-Type`.
pub async fn put_file(
    State(state): State<ApiState>,
    method: Method,
    Path(key): Path<String>,
    Query(q): Query<SignedQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let path = checked(&state, &method, &key, &q)?;
    let sent_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !sent_type.trim().eq_ignore_ascii_case(&q.ct) {
        return Err(ApiError::ContentTypeMismatch);
    }
    let limit = usize::try_from(q.size).unwrap_or(usize::MAX);
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > q.size) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let bytes = to_bytes(body, limit).await.map_err(|_| ApiError::PayloadTooLarge(limit))?;
    if bytes.len() != limit {
        return Err(ApiError::InvalidField(format!(
            "the upload must be exactly {} bytes (its declared size)",
            q.size
        )));
    }
    state.chat.attachments().put_local(&path, bytes).await.map_err(crate::chat::ChatError::from)?;
    Ok(StatusCode::OK)
}

/// `GET /files/<key>?expires&size&ct&sig`: the file, with its media type.
pub async fn get_file(
    State(state): State<ApiState>,
    method: Method,
    Path(key): Path<String>,
    Query(q): Query<SignedQuery>,
) -> Result<Response, ApiError> {
    let path = checked(&state, &method, &key, &q)?;
    let Some(bytes) =
        state.chat.attachments().get_local(&path).await.map_err(crate::chat::ChatError::from)?
    else {
        return Err(ApiError::NotFound("attachment_not_found"));
    };
    let ct = HeaderValue::from_str(&q.ct).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(([(CONTENT_TYPE, ct)], bytes).into_response())
}
