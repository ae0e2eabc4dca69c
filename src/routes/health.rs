//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use diesel::RunQueryDsl;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::run_blocking;
use crate::error::ApiError;
use crate::openapi::responses::Unavailable;
use crate::sessions::MAX_FEED_LAG;
use crate::state::AppState;

/// The process answers.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// PostgreSQL answers and the view of revocations is current.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ready {
    #[schema(value_type = String, pattern = "^ready$")]
    status: &'static str,
    /// How far this instance's view of revoked sessions is behind the
    /// database.
    revocation_feed_lag_ms: u64,
}

/// Liveness.
///
/// 200 while the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness.
///
/// 200 when PostgreSQL answers and this instance's view of revocations is
/// current; 503 `unavailable` when PostgreSQL does not answer within the
/// request deadline, or when the revocation feed is more than 5 s behind
/// (SPEC 4.5: a load balancer then drains the instance until it catches up).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Ready),
        (status = 503, response = Unavailable),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let lag = state.revocations.set().lag();
    if lag > MAX_FEED_LAG {
        log::warn!("not ready: the revocation feed is {lag:?} behind");
        return Err(ApiError::Unavailable);
    }
    run_blocking(&state.db, |conn| {
        diesel::sql_query("SELECT 1").execute(conn).map_err(|err| {
            log::warn!("readiness check failed: {err}");
            ApiError::Unavailable
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(Ready {
        status: "ready",
        revocation_feed_lag_ms: u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
    }))
}
