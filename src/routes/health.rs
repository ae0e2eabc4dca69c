//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use diesel::RunQueryDsl;
use serde_json::json;

use crate::db::run_blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when PostgreSQL answers, 503 `unavailable` when it does not (within
/// the pool's checkout timeout).
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    run_blocking(&state.db, |conn| {
        diesel::sql_query("SELECT 1").execute(conn).map_err(|err| {
            log::warn!("readiness check failed: {err}");
            ApiError::Unavailable
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
