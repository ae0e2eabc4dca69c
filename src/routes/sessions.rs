//! `/auth/sessions`: the caller's devices.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::db::run_blocking;
use crate::error::ApiError;
use crate::extract::{parse_id, Authenticated};
use crate::sessions::{RevokeReason, Session};
use crate::state::AppState;

#[derive(Serialize)]
struct SessionView {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

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

/// Ends one of the caller's sessions. Another user's id, an unknown id and an
/// ended session all get the same 404.
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
