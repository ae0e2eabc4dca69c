//! `/admin/*`: operations on other users, for callers with the `admin` role.

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::extract::{parse_id, Authenticated};
use crate::openapi::responses::{Forbidden, NotFound, Unauthorized, Unavailable};
use crate::sessions::RevokeReason;
use crate::state::AppState;
use crate::users::User;

/// Force logout: ends every session of the user.
#[utoipa::path(
    post,
    path = "/admin/users/{user_id}/revoke-sessions",
    tag = "admin",
    params(("user_id" = Uuid, Path, description = "The user whose sessions end")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session of the user has ended"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn revoke_sessions(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !auth.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let user_id = parse_id(&path)?;
    let revoked = state
        .revocations
        .transaction(move |conn, revoker| {
            if User::find(conn, user_id)?.is_none() {
                return Err(ApiError::NotFound);
            }
            Ok(revoker.end_all_of_user(conn, user_id, RevokeReason::Admin)?)
        })
        .await?;
    log::info!(
        "admin {} revoked {} session(s) of user {user_id}",
        auth.user_id,
        revoked.len()
    );
    Ok(HttpResponse::NoContent().finish())
}
