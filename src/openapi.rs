//! The OpenAPI 3.1 description of the HTTP API (SPEC 7.3), generated from
//! the handlers' `#[utoipa::path]` annotations and the `ToSchema` types of
//! their bodies, and served at `GET /openapi.json`.
//!
//! To document an endpoint: annotate its handler with `#[utoipa::path]`
//! (every status it can answer, errors included, with the shared error
//! responses of [`responses`]), then add the handler to `paths(...)` below.
//! `tests/api/openapi.rs` fails while a route of `src/routes/mod.rs` is
//! missing here.

pub mod account;
pub mod oauth;
pub mod responses;

use std::sync::LazyLock;

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::browser::{CookieTokens, TokenTransport};
use crate::error::{ErrorBody, ErrorCode};
use crate::oauth::{ActiveToken, Introspection};
use crate::routes::{
    account as account_routes, admin, auth, docs, health, jwks, metrics, oauth as oauth_routes,
    sessions,
};
use crate::sessions::TokenPair;
use account::{AccountIcon, AccountPage, AccountScript, AccountStyle, NotModified};
use oauth::{
    Introspected, OAuthBadRequest, OAuthErrorBody, OAuthErrorCode, OAuthInvalidClient,
    OAuthPayloadTooLarge, OAuthTokens, OAuthUnavailable, Revoked,
};
use responses::{
    BadRequest, EmailTaken, Forbidden, ForeignOrigin, InvalidCredentials, NotFound,
    PayloadTooLarge, Tokens, TooManyRequests, Unauthorized, Unavailable,
};

/// The name of the bearer security scheme; operations name it as
/// `security(("bearer" = []))` (the macro takes only a literal).
pub const BEARER: &str = "bearer";
/// The name of the HTTP Basic scheme of registered clients.
pub const CLIENT_BASIC: &str = "client_basic";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "authgate",
        description = "A self-hosted JWT token server: signup, login, rotating refresh \
                       tokens with theft detection, sessions, and revocation. Every error \
                       is `{\"error\": code, \"message\": text}` with a code from a closed set."
    ),
    paths(
        auth::signup,
        auth::login,
        auth::me,
        auth::reissue,
        auth::logout,
        auth::logout_all,
        sessions::list,
        sessions::delete,
        admin::revoke_sessions,
        jwks::jwks,
        health::healthz,
        health::readyz,
        metrics::metrics,
        oauth_routes::metadata,
        oauth_routes::token,
        oauth_routes::revoke,
        oauth_routes::introspect,
        docs::openapi_json,
        account_routes::page,
        account_routes::style,
        account_routes::script,
        account_routes::icon,
    ),
    components(
        schemas(
            ErrorBody,
            ErrorCode,
            TokenPair,
            CookieTokens,
            TokenTransport,
            OAuthErrorBody,
            OAuthErrorCode,
            Introspection,
            ActiveToken
        ),
        responses(
            Tokens,
            BadRequest,
            Unauthorized,
            InvalidCredentials,
            Forbidden,
            ForeignOrigin,
            NotFound,
            EmailTaken,
            PayloadTooLarge,
            TooManyRequests,
            Unavailable,
            OAuthTokens,
            OAuthBadRequest,
            OAuthInvalidClient,
            OAuthPayloadTooLarge,
            OAuthUnavailable,
            Revoked,
            Introspected,
            AccountPage,
            AccountStyle,
            AccountScript,
            AccountIcon,
            NotModified,
        )
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Credentials, tokens and logout"),
        (name = "sessions", description = "The caller's sessions (devices)"),
        (name = "admin", description = "Operations on other users, for the `admin` role"),
        (name = "keys", description = "The public keys that verify our tokens (RFC 7517)"),
        (name = "oauth", description = "OAuth 2.0 (RFC 6749, 7009, 7662, 8414): form in, \
            JSON out, RFC 6749 errors"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "account", description = "The account page for people, and its files (SPEC 8)"),
    )
)]
pub struct ApiDoc;

/// `bearer`: `Authorization: Bearer <JWT>`, the access token (or for
/// reissue the refresh token). `client_basic`: HTTP Basic with a client of
/// `authgate clients add` (introspection).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from login or reissue (POST /auth/reissue also \
                         takes a refresh token here)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CLIENT_BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "client_id and client_secret of `authgate clients add` (RFC 6749 2.3.1)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served: utoipa's output with three corrections.
///
/// - Every response header but `Set-Cookie` is marked `required`: utoipa 5's
///   `Header` has no such field, and every other header this document names
///   is always sent with its status, so that testers (schemathesis) check
///   their presence too; `Set-Cookie` comes in cookie mode only.
/// - An optional request body is spelt `Option<T>`, which also makes its
///   schema `oneOf: [null, T]`; the body may be absent, but JSON `null` is
///   not one, so the schema is `T`.
/// - utoipa 5.5 serialises a link's fields in snake case (`operation_id`);
///   OpenAPI's are `operationId`, `operationRef`, `requestBody`.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let operations = paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut());
        for operation in operations {
            if let Some(responses) = operation.get_mut("responses") {
                mark_headers_required(responses);
                camel_case_links(responses);
            }
            if let Some(body) = operation.get_mut("requestBody") {
                drop_null_alternative(body);
            }
        }
    }
    if let Some(responses) = doc.pointer_mut("/components/responses") {
        mark_headers_required(responses);
        camel_case_links(responses);
    }
    doc
}

fn drop_null_alternative(body: &mut Value) {
    if body.get("required") == Some(&Value::Bool(true)) {
        return;
    }
    let schemas = body
        .get_mut("content")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|content| content.values_mut())
        .filter_map(|media| media.get_mut("schema"));
    for schema in schemas {
        let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) else {
            continue;
        };
        let not_null: Vec<&Value> = alternatives
            .iter()
            .filter(|s| s.get("type") != Some(&Value::from("null")))
            .collect();
        if let [only] = not_null[..] {
            *schema = only.clone();
        }
    }
}

fn camel_case_links(responses: &mut Value) {
    let links = responses
        .as_object_mut()
        .into_iter()
        .flat_map(|r| r.values_mut())
        .filter_map(|response| response.get_mut("links"))
        .filter_map(Value::as_object_mut)
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}

fn mark_headers_required(responses: &mut Value) {
    let headers = responses
        .as_object_mut()
        .into_iter()
        .flat_map(|r| r.values_mut())
        .filter_map(|response| response.get_mut("headers"))
        .filter_map(Value::as_object_mut)
        .flat_map(|headers| headers.iter_mut())
        .filter(|(name, _)| !name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, header)| header.as_object_mut());
    for header in headers {
        header.insert("required".to_owned(), Value::Bool(true));
    }
}

/// The serialised document, built once.
pub static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| document().to_string());
