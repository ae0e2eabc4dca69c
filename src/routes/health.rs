//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use diesel::RunQueryDsl;
use serde_json::json;

use crate::db::run_blocking;
use crate::error::ApiError;
use crate::sessions::MAX_FEED_LAG;
use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when PostgreSQL answers and this instance's view of revocations is
/// current; 503 `unavailable` when PostgreSQL does not answer within the
/// request deadline, or when the revocation feed is more than 5 s behind
/// (SPEC 4.5: a load balancer then drains the instance until it catches up).
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
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "revocation_feed_lag_ms": u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
    })))
}
