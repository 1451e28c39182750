//! `/applications`: create, show, rename.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;

use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ApiState;
use super::access::{Access, need};
use super::audit::{Act, Origin};
use super::error::ApiError;
use super::input::{Input, Resource};
use super::openapi::{BAD_BODY, INTERNAL, NO_APP, TOO_LARGE, UNAVAILABLE};
use super::params::AppPath;
use super::views::{ApplicationOut, CreatedApplicationOut};
use crate::chat::ApplicationChanges;
use crate::model::UserGroups;

/// The body of application requests.
pub struct ApplicationBody;

impl Resource for ApplicationBody {
    const ROOT: &'static str = "application";
}

/// The body of `POST /applications` (flat, nested under `application`, or a form).
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct NewApplicationIn {
    #[schema(min_length = 1, max_length = 255)]
    name: String,
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// A JSON object of at most 4 KiB serialized.
    metadata: Option<Map<String, Value>>,
}

/// The body of `PUT`/`PATCH /applications/{token}`: at least one field.
#[derive(ToSchema)]
#[schema(min_properties = 1)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct ApplicationChangeIn {
    #[schema(required = false, min_length = 1, max_length = 255)]
    name: String,
    /// An https URL of the identity provider's key set; null or "" clears it.
    #[schema(max_length = 2048)]
    jwks_url: Option<String>,
    /// `open` or `backend_only`.
    #[schema(required = false, example = "backend_only")]
    user_groups: String,
    /// Null or "" clears it.
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// Replaces the old object; null clears it.
    metadata: Option<Map<String, Value>>,
}

const MAX_NAME: usize = 255;
use crate::model::MAX_DESCRIPTION;
const MAX_URL: usize = 2048;

/// Proof that the admin key was checked. An extractor, so that it runs before
/// the body is read: without the key the answer is 401/403 whatever the body.
pub struct Admin;

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        state.check_admin(&parts.headers)?;
        Ok(Admin)
    }
}

/// `POST /applications {"name"}`.
#[utoipa::path(
    post,
    path = "/api/v1/applications",
    operation_id = "create_application",
    tag = "applications",
    security(("admin_key" = []), ()),
    request_body = NewApplicationIn,
    responses(
        (status = 201, description = "The new application, with its signing secret", body = CreatedApplicationOut),
        (status = 400, description = BAD_BODY),
        (status = 401, description = "`unauthorized`: the admin key is configured and was not sent"),
        (status = 403, description = "`forbidden`: the admin key sent is not the node's"),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: a field is missing, empty, too long or of the wrong type"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    _admin: Admin,
    origin: Origin,
    Input(fields, _): Input<ApplicationBody>,
) -> Result<(StatusCode, Json<CreatedApplicationOut>), ApiError> {
    let name = fields.required_string("name", MAX_NAME)?;
    let description = fields.clearable_string("description", MAX_DESCRIPTION)?.flatten();
    let metadata = fields.clearable_object("metadata")?.flatten().unwrap_or_default();
    let view = state.chat.create_application(name, description, metadata).await?;
    let act = Act {
        app: &view.app.id,
        actor: "admin".to_owned(),
        action: "application.create",
        object: format!("application:{}", view.app.id.as_str()),
        before: None,
        after: Some(serde_json::json!({ "name": view.app.name, "secret": "generated" })),
    };
    super::audit::record(state.chat.store(), &origin, act).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// `GET /applications/:token`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}",
    operation_id = "get_application",
    tag = "applications",
    params(AppPath),
    responses(
        (status = 200, description = "The application (without its secret)", body = ApplicationOut),
        (status = 404, description = NO_APP),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn show(
    State(state): State<ApiState>,
    access: Access<need::Admin>,
) -> Result<Json<ApplicationOut>, ApiError> {
    Ok(Json(state.chat.application_view(access.token()).await?.into()))
}

/// `PUT /applications/:token`: the same as `PATCH`.
#[utoipa::path(
    put,
    path = "/api/v1/applications/{token}",
    operation_id = "replace_application",
    tag = "applications",
    params(AppPath),
    request_body = ApplicationChangeIn,
    responses(
        (status = 200, description = "The changed application", body = ApplicationOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: no field, or a bad one (a `jwks_url` that is not https or names a private address)"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn replace(
    state: State<ApiState>,
    access: Access<need::Admin>,
    input: Input<ApplicationBody>,
) -> Result<Json<ApplicationOut>, ApiError> {
    update(state, access, input).await
}

/// `PATCH /applications/:token {"name"?, "jwks_url"?, "user_groups"?, "description"?, "metadata"?}`
/// (`jwks_url` or `description` null or "" clears it; `metadata` replaces the old, null clears it).
#[utoipa::path(
    patch,
    path = "/api/v1/applications/{token}",
    operation_id = "update_application",
    tag = "applications",
    params(AppPath),
    request_body = ApplicationChangeIn,
    responses(
        (status = 200, description = "The changed application", body = ApplicationOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: no field, or a bad one (a `jwks_url` that is not https or names a private address)"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    access: Access<need::Admin>,
    Input(fields, _): Input<ApplicationBody>,
) -> Result<Json<ApplicationOut>, ApiError> {
    let name = fields.has("name").then(|| fields.required_string("name", MAX_NAME)).transpose()?;
    let jwks_url = fields.clearable_string("jwks_url", MAX_URL)?;
    let user_groups = fields
        .has("user_groups")
        .then(|| {
            let name = fields.required_string("user_groups", 32)?;
            UserGroups::parse(&name).ok_or_else(|| {
                ApiError::InvalidField("`user_groups` must be \"open\" or \"backend_only\"".into())
            })
        })
        .transpose()?;
    let description = fields.clearable_string("description", MAX_DESCRIPTION)?;
    let metadata = fields.clearable_object("metadata")?.map(Option::unwrap_or_default);
    if name.is_none()
        && jwks_url.is_none()
        && user_groups.is_none()
        && description.is_none()
        && metadata.is_none()
    {
        return Err(ApiError::InvalidField(
            "give `name`, `jwks_url`, `user_groups`, `description` or `metadata`".into(),
        ));
    }
    let old = access.app();
    let (mut before, mut after) = (Map::new(), Map::new());
    if let Some(name) = &name {
        before.insert("name".into(), Value::from(old.name.as_str()));
        after.insert("name".into(), Value::from(name.as_str()));
    }
    if let Some(url) = &jwks_url {
        before.insert("jwks_url".into(), old.jwks_url.as_deref().map_or(Value::Null, Value::from));
        after.insert("jwks_url".into(), url.as_deref().map_or(Value::Null, Value::from));
    }
    if let Some(groups) = user_groups {
        before.insert("user_groups".into(), Value::from(old.user_groups.as_str()));
        after.insert("user_groups".into(), Value::from(groups.as_str()));
    }
    if description.is_some() {
        after.insert("description".into(), Value::from("changed"));
    }
    if metadata.is_some() {
        after.insert("metadata".into(), Value::from("changed"));
    }
    let changes = ApplicationChanges { name, jwks_url, user_groups, description, metadata };
    let view = state.chat.update_application(access.token(), changes).await?;
    let object = format!("application:{}", view.app.id.as_str());
    access.audit(&state, "application.update", object, Some(before.into()), Some(after.into())).await?;
    Ok(Json(view.into()))
}
