//! `POST …/chats/:number/attachments` (an upload for the backend), and the
//! node's own signed file routes `PUT|GET /files/<key>` (filesystem backend).

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::input::{Input, Resource};
use super::openapi::{BAD_BODY, INTERNAL, NO_CHAT, TOO_LARGE};
use super::params::{ChatPath, PathParams, QueryParams, chat_number};
use crate::attachments::{LocalAccess, Signed};
use crate::chat::{Author, NewUpload};
use crate::ids::UserId;
use crate::protocol::UploadOut;

/// The body of upload requests.
pub struct UploadBody;

impl Resource for UploadBody {
    const ROOT: &'static str = "attachment";
}

/// The body of `POST …/attachments`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct NewUploadIn {
    /// The file name.
    #[schema(min_length = 1, max_length = 255, example = "notes.txt")]
    name: String,
    /// The media type the upload must be sent with.
    #[schema(min_length = 1, max_length = 255, example = "text/plain")]
    content_type: String,
    /// The exact size in bytes (at most `attachments.max_size`).
    #[schema(minimum = 1)]
    size: u64,
    /// The uploader, a member of the chat (none: the backend).
    created_by: Option<UserId>,
}

/// `POST …/chats/:number/attachments {"name","content_type","size","created_by"?}`
/// → 201 `{"id","upload_url","expires_at"}`.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/chats/{number}/attachments",
    operation_id = "create_upload",
    tag = "attachments",
    params(ChatPath),
    request_body = NewUploadIn,
    responses(
        (status = 201, description = "Where to PUT the bytes, and the id to send in a message", body = UploadOut),
        (status = 400, description = BAD_BODY),
        (status = 403, description = "`not_a_member`: `created_by` is not a member of the chat"),
        (status = 404, description = NO_CHAT),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`, `invalid_attachment`: a bad field, or a size over `attachments.max_size` or a media type not accepted"),
        (status = 500, description = INTERNAL),
        (status = 503, description = "`attachments_unavailable`, `store_unavailable`, `redis_unavailable`, `draining`: no attachment store, or a service does not answer"),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    access: Access<need::MessagesWrite>,
    PathParams(ChatPath { number, .. }): PathParams<ChatPath>,
    Input(fields, _): Input<UploadBody>,
) -> Result<(StatusCode, Json<UploadOut>), ApiError> {
    let number = chat_number(&number)?;
    let name = fields.required_string("name", crate::chat::MAX_ATTACHMENT_NAME)?;
    let content_type = fields.required_string("content_type", 255)?;
    let size = fields.required_u64("size", 1, u64::MAX)?;
    let created_by = fields.optional_user("created_by")?;
    let app = state.chat.application(access.token()).await?;
    let new = NewUpload { name, content_type, size };
    let upload = state.chat.create_upload(&app.id, &Author::Backend(created_by), number, new).await?;
    let out = UploadOut { id: upload.id, upload_url: upload.upload_url, expires_at: upload.expires_at };
    Ok((StatusCode::CREATED, Json(out)))
}

/// The query of a signed file URL.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// When the URL stops working, in seconds since the Unix epoch.
    expires: i64,
    /// The file's size in bytes.
    size: u64,
    /// The file's media type.
    ct: String,
    /// The signature over the method, key, `expires`, `size` and `ct`.
    sig: String,
}

/// `/files/{key}`: the object key, which may hold slashes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FilePath {
    /// The object key, as the signed URL names it.
    key: String,
}

/// 403 and 422 answers of a signed file URL.
const BAD_URL: &str = "`url_expired`, `invalid_signature`: the URL is past its time, or altered";
/// 404 answers of a signed file URL.
const NO_FILE: &str =
    "`not_found`, `attachment_not_found`: this node serves no files (S3), or the file is gone";

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
#[utoipa::path(
    put,
    path = "/files/{*key}",
    operation_id = "put_file",
    tag = "attachments",
    params(FilePath, SignedQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "Exactly `size` bytes, sent with `Content-Type` `ct`"),
    responses(
        (status = 200, description = "The file is stored"),
        (status = 403, description = BAD_URL),
        (status = 404, description = NO_FILE),
        (status = 413, description = "`payload_too_large`: more bytes than the declared size"),
        (status = 415, description = "`content_type_mismatch`: the `Content-Type` is not the declared one"),
        (status = 422, description = "`invalid_field`, `invalid_parameter`: fewer bytes than the declared size, or a query that cannot be read"),
        (status = 500, description = INTERNAL),
        (status = 503, description = "`attachments_unavailable`: the attachment store does not answer"),
    )
)]
pub async fn put_file(
    State(state): State<ApiState>,
    method: Method,
    PathParams(FilePath { key }): PathParams<FilePath>,
    QueryParams(q): QueryParams<SignedQuery>,
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
#[utoipa::path(
    get,
    path = "/files/{*key}",
    operation_id = "get_file",
    tag = "attachments",
    params(FilePath, SignedQuery),
    responses(
        (status = 200, description = "The file, with the media type it was declared with", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = BAD_URL),
        (status = 404, description = NO_FILE),
        (status = 422, description = "`invalid_parameter`: a query that cannot be read"),
        (status = 500, description = INTERNAL),
        (status = 503, description = "`attachments_unavailable`: the attachment store does not answer"),
    )
)]
pub async fn get_file(
    State(state): State<ApiState>,
    method: Method,
    PathParams(FilePath { key }): PathParams<FilePath>,
    QueryParams(q): QueryParams<SignedQuery>,
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
