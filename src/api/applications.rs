//! `/applications`: create, show, rename.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::ApiState;
use super::error::ApiError;
use super::input::{Input, Resource};
use super::params::{PathParams, token};
use super::views::{ApplicationOut, CreatedApplicationOut};
use crate::chat::ApplicationChanges;
use crate::model::UserGroups;

/// The body of application requests.
pub struct ApplicationBody;

impl Resource for ApplicationBody {
    const ROOT: &'static str = "application";
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
pub async fn create(
    State(state): State<ApiState>,
    _admin: Admin,
    Input(fields, _): Input<ApplicationBody>,
) -> Result<(StatusCode, Json<CreatedApplicationOut>), ApiError> {
    let name = fields.required_string("name", MAX_NAME)?;
    let description = fields.clearable_string("description", MAX_DESCRIPTION)?.flatten();
    let metadata = fields.clearable_object("metadata")?.flatten().unwrap_or_default();
    let view = state.chat.create_application(name, description, metadata).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// `GET /applications/:token`.
pub async fn show(
    State(state): State<ApiState>,
    PathParams(raw): PathParams<String>,
) -> Result<Json<ApplicationOut>, ApiError> {
    Ok(Json(state.chat.application_view(&token(raw)).await?.into()))
}

/// `PUT`/`PATCH /applications/:token {"name"?, "jwks_url"?, "user_groups"?, "description"?, "metadata"?}`
/// (`jwks_url` or `description` null or "" clears it; `metadata` replaces the old, null clears it).
pub async fn update(
    State(state): State<ApiState>,
    PathParams(raw): PathParams<String>,
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
    let changes = ApplicationChanges { name, jwks_url, user_groups, description, metadata };
    Ok(Json(state.chat.update_application(&token(raw), changes).await?.into()))
}
