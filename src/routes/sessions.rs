//! `/auth/sessions`: the caller's devices.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::run_blocking;
use crate::error::ApiError;
use crate::extract::{parse_id, Authenticated};
use crate::openapi::responses::{NotFound, Unauthorized, Unavailable};
use crate::sessions::{RevokeReason, Session};
use crate::state::AppState;

/// One of the caller's sessions (a device).
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionView {
    id: Uuid,
    /// The login.
    created_at: DateTime<Utc>,
    /// The last login or reissue.
    last_used_at: DateTime<Utc>,
    /// The session's absolute end.
    expires_at: DateTime<Utc>,
    /// The User-Agent of the login.
    user_agent: Option<String>,
    /// The client address of the login.
    ip: Option<String>,
    /// Whether this is the session of the access token of the request.
    current: bool,
}

/// The caller's live sessions.
#[utoipa::path(
    get,
    operation_id = "list_sessions",
    path = "/auth/sessions",
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's live sessions", body = Vec<SessionView>,
            links(("DeleteSession" = (
                operation_id = "delete_session",
                parameters(("id" = "$response.body#/0/id")),
                description = "Ends the first session listed"
            )))),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, now) = (auth.user_id, state.clock.now());
    let access_ttl = state.issuer.policy().access_ttl;
    let live = run_blocking(&state.db, move |conn| {
        Ok::<_, ApiError>(Session::live_for_user(conn, user_id, now, access_ttl)?)
    })
    .await?;
    let views: Vec<SessionView> = live
        .into_iter()
        .map(|s| SessionView {
            current: s.id == auth.session_id,
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            user_agent: s.user_agent,
            ip: s.ip,
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Ends one of the caller's sessions.
///
/// Another user's id, an unknown id and an ended session all get the same
/// 404.
#[utoipa::path(
    delete,
    operation_id = "delete_session",
    path = "/auth/sessions/{id}",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "A session id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session has ended"),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let user_id = auth.user_id;
    let session = run_blocking(&state.db, move |conn| {
        Ok::<_, ApiError>(Session::find_of_user(conn, id, user_id)?)
    })
    .await?;
    match session {
        Some(s) if s.revoked_at.is_none() => {
            state
                .revocations
                .end(vec![s.id], RevokeReason::Deleted)
                .await?;
            Ok(HttpResponse::NoContent().finish())
        }
        _ => Err(ApiError::NotFound),
    }
}
