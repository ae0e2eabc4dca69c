//! `GET /metrics`.

use actix_web::{web, HttpResponse};

use crate::db::run_blocking;
use crate::error::ApiError;
use crate::metrics::count_tokens;
use crate::state::AppState;

/// Prometheus metrics.
///
/// Always 200: when PostgreSQL does not answer, the token
/// gauges are left out and the counters are still served.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "The Prometheus text exposition format 0.0.4",
            body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let gauges = &state.metrics.gauges;
    let tokens = match gauges.fresh() {
        Some(counts) => Some(counts),
        None => run_blocking(&state.db, |conn| Ok::<_, ApiError>(count_tokens(conn)?))
            .await
            .ok()
            .inspect(|counts| gauges.store(*counts)),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(
            tokens,
            state.revocations.set().len(),
            state.revocations.set().lag(),
        ))
}
