//! `GET /openapi.json`: the API's own description (SPEC 7.3).

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;

use crate::openapi::DOCUMENT_JSON;

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 description of this API",
            body = Object, content_type = "application/json"),
    )
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(DOCUMENT_JSON.as_str())
}
