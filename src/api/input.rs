//! Request bodies: JSON (flat or Rails-nested) and form data, read under a size limit.
//!
//! `{"name":"x"}`, `{"application":{"name":"x"}}`, `name=x` and
//! `application[name]=x` all read as the same fields.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Map, Value};

use super::ApiState;
use super::error::ApiError;
use crate::ids::{AttachmentId, UserId};

/// The fields of a request body, with the resource's nesting removed.
#[derive(Debug, Default)]
pub struct Fields(Map<String, Value>);

/// The resource a body describes; names its Rails-style root key.
pub trait Resource {
    /// `application`, `chat`, `message`…
    const ROOT: &'static str;
}

/// A request body for resource `R`.
pub struct Input<R>(pub Fields, pub std::marker::PhantomData<R>);

impl<R, S> FromRequest<S> for Input<R>
where
    R: Resource,
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = ApiState::from_ref(state).max_body_bytes;
        let fields = read_fields(req, limit, R::ROOT).await?;
        Ok(Input(fields, std::marker::PhantomData))
    }
}

enum Kind {
    Json,
    Form,
}

fn content_kind(req: &Request) -> Result<Option<Kind>, ApiError> {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::UnsupportedContentType)?;
    let mime = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(Some(Kind::Json))
    } else if mime == "application/x-www-form-urlencoded" {
        Ok(Some(Kind::Form))
    } else {
        Err(ApiError::UnsupportedContentType)
    }
}

async fn read_fields(req: Request, limit: usize, root: &str) -> Result<Fields, ApiError> {
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let kind = content_kind(&req)?;
    let body: Body = req.into_body();
    let bytes = to_bytes(body, limit).await.map_err(|_| ApiError::PayloadTooLarge(limit))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Fields::default());
    }
    // `curl -d '{"a":1}'` sends JSON labelled as a form; read it as what it is.
    let looks_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let map = match kind {
        Some(Kind::Form) if !looks_json => parse_form(&bytes, root)?,
        Some(Kind::Json | Kind::Form) | None => parse_json(&bytes, root)?,
    };
    Ok(Fields(map))
}

fn parse_json(bytes: &[u8], root: &str) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| ApiError::Malformed("JSON"))?;
    let Value::Object(mut map) = value else {
        return Err(ApiError::InvalidField("the body must be a JSON object".into()));
    };
    if let Some(Value::Object(_)) = map.get(root)
        && let Some(Value::Object(inner)) = map.remove(root)
    {
        return Ok(inner);
    }
    Ok(map)
}

fn parse_form(bytes: &[u8], root: &str) -> Result<Map<String, Value>, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|_| ApiError::Malformed("form data"))?;
    let mut map = Map::new();
    for (key, value) in pairs {
        let key = key
            .strip_prefix(root)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .map_or(key.clone(), str::to_owned);
        map.insert(key, Value::String(value));
    }
    Ok(map)
}

impl Fields {
    /// A required, non-empty string field of at most `max` characters.
    pub fn required_string(&self, name: &str, max: usize) -> Result<String, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(ApiError::InvalidField(format!("`{name}` is required"))),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(ApiError::InvalidField(format!("`{name}` must not be empty")))
            }
            Some(Value::String(s)) if s.chars().count() > max => {
                Err(ApiError::InvalidField(format!("`{name}` is longer than {max} characters")))
            }
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::InvalidField(format!("`{name}` must be a string"))),
        }
    }

    /// Whether the body names the field at all.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A string that can be set or cleared: absent → `None` (leave as is),
    /// null or "" → `Some(None)` (clear), a string → `Some(Some(s))`.
    pub fn clearable_string(&self, name: &str, max: usize) -> Result<Option<Option<String>>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(None)),
            Some(Value::String(s)) if s.chars().count() > max => {
                Err(ApiError::InvalidField(format!("`{name}` is longer than {max} characters")))
            }
            Some(Value::String(s)) => Ok(Some(Some(s.trim().to_owned()))),
            Some(_) => Err(ApiError::InvalidField(format!("`{name}` must be a string or null"))),
        }
    }

    /// An optional integer field in `min..=max` (a JSON number, or digits in a form).
    pub fn optional_u64(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let value = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::InvalidField(format!("`{name}` must be an integer from {min} to {max}"))),
        }
    }

    /// A JSON object field that can be set or cleared: absent → `None`, null
    /// → `Some(None)`, an object (or, in a form, its JSON text) → `Some(Some(map))`.
    pub fn clearable_object(&self, name: &str) -> Result<Option<Option<Map<String, Value>>>, ApiError> {
        let wrong = || ApiError::InvalidField(format!("`{name}` must be a JSON object or null"));
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::Object(map)) => Ok(Some(Some(map.clone()))),
            Some(Value::String(text)) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => Ok(Some(Some(map))),
                _ => Err(wrong()),
            },
            Some(_) => Err(wrong()),
        }
    }

    /// A required integer field in `min..=max`.
    pub fn required_u64(&self, name: &str, min: u64, max: u64) -> Result<u64, ApiError> {
        self.optional_u64(name, min, max)?
            .ok_or_else(|| ApiError::InvalidField(format!("`{name}` is required")))
    }

    /// An optional list of attachment ids: a JSON array of strings, or (form
    /// data) one string of ids separated by commas; at most `max`.
    pub fn optional_attachments(&self, name: &str, max: usize) -> Result<Vec<AttachmentId>, ApiError> {
        let raw: Vec<&str> = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                strings.ok_or_else(|| {
                    ApiError::InvalidField(format!("`{name}` must be a list of attachment ids"))
                })?
            }
            Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
            Some(_) => {
                return Err(ApiError::InvalidField(format!("`{name}` must be a list of attachment ids")));
            }
        };
        if raw.len() > max {
            return Err(ApiError::InvalidField(format!("`{name}` names at most {max} ids")));
        }
        raw.into_iter()
            .map(|id| AttachmentId::parse(id).map_err(|e| ApiError::InvalidField(format!("`{name}`: {e}"))))
            .collect()
    }

    /// A list of strings (`None` when absent), each at most `max_len` characters, at most `max` of them.
    pub fn optional_strings(
        &self,
        name: &str,
        max: usize,
        max_len: usize,
    ) -> Result<Option<Vec<String>>, ApiError> {
        let invalid = || ApiError::InvalidField(format!("`{name}` must be a list of strings"));
        let items = match self.0.get(name) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(invalid()),
        };
        if items.len() > max {
            return Err(ApiError::InvalidField(format!("`{name}` has at most {max} items")));
        }
        let strings: Option<Vec<String>> = items
            .iter()
            .map(|v| v.as_str().filter(|s| s.chars().count() <= max_len).map(str::to_owned))
            .collect();
        strings.map(Some).ok_or_else(invalid)
    }

    /// An optional boolean field.
    pub fn optional_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::InvalidField(format!("`{name}` must be true or false"))),
        }
    }

    /// An optional user id field.
    pub fn optional_user(&self, name: &str) -> Result<Option<UserId>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                UserId::parse(s).map(Some).map_err(|e| ApiError::InvalidField(format!("`{name}`: {e}")))
            }
            Some(_) => Err(ApiError::InvalidField(format!("`{name}` must be a string"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_flat_and_nested_read_alike() {
        let flat = parse_json(br#"{"name":"x"}"#, "application").unwrap();
        let nested = parse_json(br#"{"application":{"name":"x"}}"#, "application").unwrap();
        assert_eq!(flat, nested);
    }

    #[test]
    fn forms_flat_and_nested_read_alike() {
        let flat = parse_form(b"body=hi+there&sender=bob", "message").unwrap();
        let nested = parse_form(b"message%5Bbody%5D=hi+there&message[sender]=bob", "message").unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.get("body"), Some(&Value::String("hi there".into())));
    }

    #[test]
    fn bad_json_and_non_objects_are_told_apart() {
        assert!(matches!(parse_json(b"{", "x"), Err(ApiError::Malformed("JSON"))));
        assert!(matches!(parse_json(b"[1]", "x"), Err(ApiError::InvalidField(_))));
    }

    #[test]
    fn field_rules() {
        let f = Fields(parse_json(br#"{"a":"","b":5,"c":"ok","u":"bad id"}"#, "x").unwrap());
        assert!(f.required_string("a", 10).is_err());
        assert!(f.required_string("b", 10).is_err());
        assert!(f.required_string("missing", 10).is_err());
        assert_eq!(f.required_string("c", 10).unwrap(), "ok");
        assert!(f.required_string("c", 1).is_err());
        assert!(f.optional_user("u").is_err());
        assert_eq!(f.optional_user("none").unwrap(), None);
    }
}

#[cfg(test)]
pub(super) mod props;
