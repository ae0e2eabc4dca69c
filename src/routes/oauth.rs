//! OAuth 2.0 (SPEC 7.2): the RFC 8414 metadata document, the refresh-token
//! grant (RFC 6749 §6), revocation (RFC 7009) and introspection (RFC 7662).
//! Form in, JSON out; errors are RFC 6749's ([`OAuthError`]), not the closed
//! set of SPEC 3. The grant is the very exchange of `/auth/reissue`
//! ([`crate::sessions::Exchange`]), and revocation ends sessions as logout
//! does, through [`crate::sessions::Revocations`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::ToSchema;

use crate::db::run_blocking;
use crate::error::ApiError;
use crate::extract::Body;
use crate::oauth::{
    no_store, Candidate, ClientCredentials, Form, Introspection, Metadata, OAuthError,
};
use crate::openapi::oauth::{
    Introspected, OAuthBadRequest, OAuthInvalidClient, OAuthPayloadTooLarge, OAuthTokens,
    OAuthUnavailable, Revoked,
};
use crate::sessions::RevokeReason;
use crate::state::AppState;
use crate::tokens::TokenKind;

/// The metadata changes only with the configuration: clients may cache it
/// for a few minutes, as they do the JWKS.
const METADATA_CACHE_CONTROL: &str = "public, max-age=300";

// The forms, for the OpenAPI document only: `Form` reads parameters by name.
// A parameter sent empty is as if omitted, and one sent twice is 400.

/// The one grant type offered.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum GrantType {
    RefreshToken,
}

/// The form of `POST /oauth/token` (RFC 6749 6).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct RefreshGrant {
    /// Another grant type is 400 `unsupported_grant_type`.
    #[schema(inline)]
    grant_type: GrantType,
    #[schema(min_length = 1)]
    refresh_token: String,
    /// Accepted and ignored: clients are public.
    #[schema(required = false)]
    client_id: String,
    /// Accepted and ignored.
    #[schema(required = false)]
    scope: String,
}

/// The form of `POST /oauth/revoke` (RFC 7009 2.1) and of
/// `POST /oauth/introspect` (RFC 7662 2.1).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct PresentedToken {
    /// An access or refresh token.
    #[schema(min_length = 1)]
    token: String,
    /// Accepted and not needed: a token's `typ` claim tells its kind.
    #[schema(required = false, example = "refresh_token")]
    token_type_hint: String,
}

/// The authorization server's metadata (RFC 8414).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "oauth",
    responses(
        (status = 200, description = "What this server offers, with absolute URLs under \
            `server.public_url`", body = Metadata,
            headers(("Cache-Control" = String, description = "public, max-age=300"))),
    )
)]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, METADATA_CACHE_CONTROL))
        .json(&state.oauth_metadata)
}

/// The body as a form. A body over 64 KiB is 413 in the RFC's format too,
/// hence the extractor's error taken as a value.
fn form(req: &HttpRequest, body: Result<Body, ApiError>) -> Result<Form, OAuthError> {
    Form::parse(req, &body?.0)
}

/// The refresh-token grant (RFC 6749 6).
///
/// `grant_type=refresh_token&refresh_token=…`: the rules of SPEC 4.3 for a
/// refresh token sent alone. `client_id`, `scope` and any Authorization
/// header are ignored: clients are public, and the refresh token is the
/// credential.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    request_body(content = RefreshGrant, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, response = OAuthTokens),
        (status = 400, response = OAuthBadRequest),
        (status = 413, response = OAuthPayloadTooLarge),
        (status = 503, response = OAuthUnavailable),
    )
)]
pub async fn token(
    req: HttpRequest,
    body: Result<Body, ApiError>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = form(&req, body)?;
    if form.required("grant_type", "grant_type is missing")? != "refresh_token" {
        return Err(OAuthError::UnsupportedGrantType);
    }
    let refresh = form.required("refresh_token", "refresh_token is missing")?;
    let pair = state.exchange().refresh(refresh, None).await?;
    Ok(no_store(HttpResponse::Ok()).json(pair))
}

/// Revocation (RFC 7009).
///
/// `token=…` (and an optional `token_type_hint`, not needed: a token's
/// `typ` claim tells its kind). A token that logout would take ends its
/// session as logout does: an unexpired access token, or a refresh token
/// of ours whose row is of its session (expired or spent included). The
/// answer is 200 with an empty body whatever the token; only the database
/// being down is an error (503), since the client must then try again.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    request_body(content = PresentedToken, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, response = Revoked),
        (status = 400, response = OAuthBadRequest),
        (status = 413, response = OAuthPayloadTooLarge),
        (status = 503, response = OAuthUnavailable),
    )
)]
pub async fn revoke(
    req: HttpRequest,
    body: Result<Body, ApiError>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = form(&req, body)?;
    let token = form.required("token", "token is missing")?;
    let (keys, revocations) = (state.issuer.keys(), &state.revocations);
    let ended = match keys.verify(token, TokenKind::Access) {
        // Dead already; ending a live session from a stale access token
        // (one seen in some log) is more than revoking that token.
        Ok(access) if access.claims.is_expired_at(state.clock.unix()) => Ok(()),
        Ok(access) => {
            revocations
                .end_session_of_access(&access, RevokeReason::Logout)
                .await
        }
        Err(_) => {
            revocations
                .end_session_of_refresh(keys, token, RevokeReason::Logout)
                .await
        }
    };
    match ended {
        Err(err @ (ApiError::Unavailable | ApiError::Internal(_))) => Err(err.into()),
        // Unknown, malformed, foreign or already revoked: RFC 7009 §2.2.
        Ok(()) | Err(_) => Ok(no_store(HttpResponse::Ok()).finish()),
    }
}

/// Introspection (RFC 7662).
///
/// `token=…` from a registered client (HTTP Basic). The client is checked
/// first, so a caller without credentials learns nothing of the request;
/// then the token, whose session is asked of PostgreSQL in the same
/// connection.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    request_body(content = PresentedToken, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = [])),
    responses(
        (status = 200, response = Introspected),
        (status = 400, response = OAuthBadRequest),
        (status = 401, response = OAuthInvalidClient),
        (status = 413, response = OAuthPayloadTooLarge),
        (status = 503, response = OAuthUnavailable),
    )
)]
pub async fn introspect(
    req: HttpRequest,
    body: Result<Body, ApiError>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let authorization = req.headers().get(header::AUTHORIZATION);
    let credentials = ClientCredentials::from_header(authorization.map(|v| v.as_bytes()))?;
    let now = state.clock.now();
    let candidate = form(&req, body).and_then(|form| {
        let token = form.required("token", "token is missing")?;
        Ok(Candidate::of(state.issuer.keys(), token, now.timestamp()))
    });
    let answer = run_blocking(&state.db, move |conn| {
        if !credentials.authenticate(conn)? {
            return Err(OAuthError::InvalidClient(
                "the client id or secret is wrong",
            ));
        }
        match candidate? {
            Some(candidate) => Ok(candidate.introspect(conn, now)?),
            None => Ok(Introspection::INACTIVE),
        }
    })
    .await?;
    Ok(no_store(HttpResponse::Ok()).json(answer))
}
