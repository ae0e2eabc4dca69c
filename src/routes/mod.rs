//! The HTTP API (SPEC 3, and OAuth 2.0 of SPEC 7.2) and the account page
//! (SPEC 8): one file per resource, and the routing table.
//! Route modules depend on the domain modules and `crate::extract`, never on
//! one another nor on `crate::startup`.

// pub(crate): crate::openapi lists their handlers.
pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod docs;
pub(crate) mod health;
pub(crate) mod jwks;
pub(crate) mod metrics;
pub(crate) mod oauth;
pub(crate) mod sessions;

use actix_web::{web, HttpResponse, Resource, ResponseError};

use crate::error::ApiError;
use crate::oauth::OAuthError;

/// A resource whose other methods get 405 `invalid_request` with `Allow`.
fn resource(path: &str, allow: &'static str) -> Resource {
    refusing_other_methods(path, allow, ApiError::MethodNotAllowed)
}

/// [`resource`] under `/oauth/`, where errors take RFC 6749's format.
fn oauth_resource(path: &str, allow: &'static str) -> Resource {
    refusing_other_methods(path, allow, OAuthError::MethodNotAllowed)
}

fn refusing_other_methods<E: ResponseError + 'static>(
    path: &str,
    allow: &'static str,
    refuse: fn(&'static str) -> E,
) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(refuse(allow))
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/signup", "POST").route(web::post().to(auth::signup)))
        .service(resource("/auth/login", "POST").route(web::post().to(auth::login)))
        .service(resource("/auth/me", "GET").route(web::get().to(auth::me)))
        .service(resource("/auth/reissue", "POST").route(web::post().to(auth::reissue)))
        .service(resource("/auth/logout", "POST").route(web::post().to(auth::logout)))
        .service(resource("/auth/logout-all", "POST").route(web::post().to(auth::logout_all)))
        .service(resource("/auth/sessions", "GET").route(web::get().to(sessions::list)))
        .service(
            resource("/auth/sessions/{id}", "DELETE").route(web::delete().to(sessions::delete)),
        )
        .service(
            resource("/admin/users/{user_id}/revoke-sessions", "POST")
                .route(web::post().to(admin::revoke_sessions)),
        )
        .service(resource("/.well-known/jwks.json", "GET").route(web::get().to(jwks::jwks)))
        .service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(metrics::metrics)))
        .service(
            resource("/.well-known/oauth-authorization-server", "GET")
                .route(web::get().to(oauth::metadata)),
        )
        .service(oauth_resource("/oauth/token", "POST").route(web::post().to(oauth::token)))
        .service(oauth_resource("/oauth/revoke", "POST").route(web::post().to(oauth::revoke)))
        .service(
            oauth_resource("/oauth/introspect", "POST").route(web::post().to(oauth::introspect)),
        )
        .service(resource("/openapi.json", "GET").route(web::get().to(docs::openapi_json)))
        .service(resource("/account", "GET").route(web::get().to(account::page)))
        .service(resource("/account/account.css", "GET").route(web::get().to(account::style)))
        .service(resource("/account/account.js", "GET").route(web::get().to(account::script)))
        .service(resource("/account/icon.svg", "GET").route(web::get().to(account::icon)));
}

/// Unknown paths: 404 `not_found`.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
