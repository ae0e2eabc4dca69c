//! `GET /metrics`.

use actix_web::{web, HttpResponse};

use crate::db::run_blocking;
use crate::metrics::{count_tokens, render};
use crate::startup::AppState;

/// Always 200: when PostgreSQL does not answer, the token gauges are left
/// out and the counters are still served.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let tokens = match state.gauges.fresh() {
        Some(counts) => Some(counts),
        None => run_blocking(&state.pool, |conn| Ok(count_tokens(conn)?))
            .await
            .ok()
            .inspect(|counts| state.gauges.store(*counts)),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render(&state.sweeper, tokens, state.revoked.len()))
}
