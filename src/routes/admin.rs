//! `/admin/*`: operations on other users, for callers with the `admin` role.

use actix_web::{web, HttpResponse};
use chrono::Utc;

use super::extract::{parse_id, Authenticated};
use crate::db::run_blocking;
use crate::error::ApiError;
use crate::sessions::{revoke_all_for_user, RevokeReason};
use crate::startup::AppState;
use crate::users::User;

/// Force logout: ends every session of the user.
pub async fn revoke_sessions(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !auth.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let user_id = parse_id(&path)?;
    let now = Utc::now();
    let revoked = run_blocking(&state.pool, move |conn| {
        if User::find(conn, user_id)?.is_none() {
            return Err(ApiError::NotFound);
        }
        Ok(revoke_all_for_user(
            conn,
            user_id,
            RevokeReason::Admin,
            now,
        )?)
    })
    .await?;
    log::info!(
        "admin {} revoked {} session(s) of user {user_id}",
        auth.user_id,
        revoked.len()
    );
    for id in revoked {
        state.revoked.insert(id, now);
    }
    Ok(HttpResponse::NoContent().finish())
}
