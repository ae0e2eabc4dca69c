//! `/auth/*` for credentials and tokens: signup, login, me, reissue, logout.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Connection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::browser::{self, TokenTransport, Transport};
use crate::client_ip;
use crate::db::run_blocking;
use crate::error::ApiError;
use crate::extract::{bearer_token, Authenticated, Body};
use crate::openapi::responses::{
    BadRequest, EmailTaken, ForeignOrigin, InvalidCredentials, PayloadTooLarge, Tokens,
    TooManyRequests, Unauthorized, Unavailable,
};
use crate::sessions::{self, Device, RevokeReason};
use crate::state::AppState;
use crate::users::{
    canonical_email, normalize_email, validate_password, Credentials, NewUser, User,
};

/// Longest User-Agent kept on a session.
const MAX_USER_AGENT_CHARS: usize = 512;

/// The new account.
#[derive(Serialize, ToSchema)]
pub(crate) struct SignedUp {
    id: Uuid,
    /// The email as typed, trimmed.
    email: String,
}

/// A refresh token in the body.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

/// The caller, read from the access token alone.
#[derive(Serialize, ToSchema)]
pub(crate) struct Me {
    /// The user id.
    id: Uuid,
    /// Null only for a token without the `email` claim.
    email: Option<String>,
    session_id: Uuid,
    roles: Vec<String>,
}

/// The `{"email","password"}` body of signup and login, with the email
/// trimmed and checked.
fn credentials(req: &HttpRequest, body: &Body) -> Result<(String, Credentials), ApiError> {
    let credentials: Credentials = body.json(req)?;
    let email = normalize_email(&credentials.email)?;
    Ok((email, credentials))
}

/// Creates an account.
///
/// The email is trimmed and compared case-insensitively; the password has 8
/// characters to 72 bytes (UTF-8).
#[utoipa::path(
    post,
    path = "/auth/signup",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, description = "The account was created", body = SignedUp,
            links(("RevokeSessions" = (
                operation_id = "revoke_sessions",
                parameters(("user_id" = "$response.body#/id")),
                description = "An admin ends the new user's sessions"
            )))),
        (status = 400, response = BadRequest),
        (status = 409, response = EmailTaken),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn signup(
    req: HttpRequest,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (email, credentials) = credentials(&req, &body)?;
    validate_password(&credentials.password)?;
    let password_hash = state.hasher.hash(credentials.password).await?;
    let user = run_blocking(&state.db, move |conn| {
        let new = NewUser {
            email: &email,
            email_canonical: &canonical_email(&email),
            password_hash: &password_hash,
        };
        conn.transaction(|conn| {
            let user = new.insert(conn).map_err(|err| match err {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    ApiError::EmailTaken
                }
                other => other.into(),
            })?;
            if crate::db::abandoned() {
                // The client was told 503: the account must not appear later.
                return Err(ApiError::Unavailable);
            }
            Ok(user)
        })
    })
    .await?;
    log::info!("user {} signed up", user.id);
    Ok(HttpResponse::Created().json(SignedUp {
        id: user.id,
        email: user.email,
    }))
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    params(("Token-Transport" = Option<TokenTransport>, Header,
        description = "`cookie`: the refresh token travels in the `authgate_refresh` \
                       cookie, not in the body (browser apps, SPEC 8)")),
    summary = "Logs in",
    description = "Opens a session (one per device) and returns its token pair. Failed \
                   logins are limited per email and per client address: past a limit, \
                   429 even for the right password.",
    request_body = Credentials,
    responses(
        (status = 200, response = Tokens),
        (status = 400, response = BadRequest),
        (status = 401, response = InvalidCredentials),
        (status = 403, response = ForeignOrigin),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
/// Login (SPEC 3): the email is validated first (a malformed request is
/// not counted), then one blocking task reserves the login's rate-limit
/// slots and looks the user up, then bcrypt runs. A wrong password or an
/// unknown email leaves the reservation as the counted failure; a success
/// releases it in the transaction that opens the session.
pub async fn login(
    req: HttpRequest,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let transport = state.browsers.transport(&req)?;
    let (email, credentials) = credentials(&req, &body)?;
    let ip = client_ip::of_request(&req, &state.proxies);

    let lookup = canonical_email(&email);
    let limits = state.limits;
    let now = state.clock.now();
    let checked = run_blocking(&state.db, move |conn| {
        let reservation = limits.reserve(conn, &lookup, ip, now)?;
        let user = User::find_by_email(conn, &lookup)?;
        Ok::<_, ApiError>((reservation, user))
    })
    .await;
    let (reservation, user) = match checked {
        Err(err @ ApiError::RateLimited { .. }) => {
            state.metrics.logins_rate_limited.inc();
            return Err(err);
        }
        other => other?,
    };
    // An unknown email still spends a bcrypt verification (on the decoy).
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let password_ok = state.hasher.verify(credentials.password, stored).await?;
    let Some(user) = user.filter(|_| password_ok) else {
        return Err(ApiError::InvalidCredentials);
    };

    let device = Device {
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
        ip: ip.map(|ip| ip.to_string()),
    };
    let issuer = state.issuer.clone();
    let now = state.clock.now();
    let pair = state
        .revocations
        .transaction(move |conn, revoker| {
            let pair = sessions::open_session(conn, revoker, &issuer, &user, &device, now)?;
            reservation.release(conn)?;
            Ok(pair)
        })
        .await?;
    Ok(state.browsers.tokens(transport, pair))
}

/// The caller.
///
/// Read from the access token alone: no database round trip.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, response = Unauthorized),
    )
)]
pub async fn me(Authenticated(caller): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        id: caller.user_id,
        email: caller.claims.email,
        session_id: caller.session_id,
        roles: caller.claims.roles,
    })
}

/// Rotates the refresh token: it is spent, and a new pair is returned.
///
/// The refresh token comes in the body, optionally with the session's access
/// token (expired or not) as Bearer beside it, or as Bearer with no body. A
/// spent token that comes back is taken for theft and ends the session
/// (`token_reused`), unless it comes within the reuse grace.
#[utoipa::path(
    post,
    path = "/auth/reissue",
    tag = "auth",
    params(("Token-Transport" = Option<TokenTransport>, Header,
        description = "`cookie`: the refresh token travels in the `authgate_refresh` \
                       cookie, not in the body (browser apps, SPEC 8); a cookie-mode reissue has no body")),
    request_body(
        content = Option<RefreshBody>,
        description = "The refresh token; or no body, with the refresh token as Bearer"
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, response = Tokens),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = ForeignOrigin),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn reissue(
    req: HttpRequest,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let transport = state.browsers.transport(&req)?;
    if transport == Transport::Cookie {
        if !body.is_blank() {
            return Err(ApiError::invalid_request(
                "a cookie-mode reissue has no body: the refresh token is the cookie",
            ));
        }
        let Some(refresh) = browser::refresh_cookie(&req) else {
            return Ok(state
                .browsers
                .forgetting(transport, Err(ApiError::MissingCookie)));
        };
        let beside = req.headers().get(header::AUTHORIZATION);
        let result = state
            .exchange()
            .refresh(&refresh, beside.map(|v| v.as_bytes()))
            .await;
        return Ok(state.browsers.tokens_or_forget(transport, result));
    }
    let pair = if body.is_blank() {
        let refresh = bearer_token(&req)?.ok_or(ApiError::MissingToken)?;
        state.exchange().refresh(refresh, None).await?
    } else {
        let refresh = body.json::<RefreshBody>(&req)?.refresh_token;
        let beside = req.headers().get(header::AUTHORIZATION);
        state
            .exchange()
            .refresh(&refresh, beside.map(|v| v.as_bytes()))
            .await?
    };
    Ok(state.browsers.tokens(transport, pair))
}

/// Ends a session.
///
/// The session of the access token in the Authorization header, or, with
/// no header, of the refresh token in the body.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    params(("Token-Transport" = Option<TokenTransport>, Header,
        description = "`cookie`: the refresh token travels in the `authgate_refresh` \
                       cookie, which this clears; without a bearer token, the cookie names the session to end")),
    request_body(
        content = Option<RefreshBody>,
        description = "Without an Authorization header: the refresh token of the session to end"
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 204, description = "The session has ended",
            headers(("Set-Cookie" = String,
                description = "Cookie mode: `authgate_refresh=; Max-Age=0` clears the cookie"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = ForeignOrigin),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub async fn logout(
    req: HttpRequest,
    body: Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let transport = state.browsers.transport(&req)?;
    let ended = end_session(&req, &body, &state, transport).await;
    Ok(state.browsers.forgetting(
        transport,
        ended.map(|()| HttpResponse::NoContent().finish()),
    ))
}

/// Logout's work: the session of the Bearer access token; without one, of
/// the refresh token in the body, or in cookie mode of the cookie.
async fn end_session(
    req: &HttpRequest,
    body: &Body,
    state: &AppState,
    transport: Transport,
) -> Result<(), ApiError> {
    if bearer_token(req)?.is_some() {
        let auth = Authenticated::check(req)?;
        return state
            .revocations
            .end_session_of_access(&auth, RevokeReason::Logout)
            .await;
    }
    let refresh = match (body.is_blank(), transport) {
        (false, _) => body.json::<RefreshBody>(req)?.refresh_token,
        (true, Transport::Cookie) => browser::refresh_cookie(req).ok_or(ApiError::MissingCookie)?,
        (true, Transport::Body) => return Err(ApiError::MissingToken),
    };
    state
        .revocations
        .end_session_of_refresh(state.issuer.keys(), &refresh, RevokeReason::Logout)
        .await
}

/// Ends every session of the caller.
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = "auth",
    params(("Token-Transport" = Option<TokenTransport>, Header,
        description = "`cookie`: the refresh token travels in the `authgate_refresh` \
                       cookie, which this clears")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session of the caller has ended",
            headers(("Set-Cookie" = String,
                description = "Cookie mode: `authgate_refresh=; Max-Age=0` clears the cookie"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = ForeignOrigin),
        (status = 503, response = Unavailable),
    )
)]
pub async fn logout_all(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The bearer token is what this needs: its 401 comes before anything
    // about the transport.
    let transport = state.browsers.transport(&req);
    let auth = match Authenticated::check(&req) {
        Ok(auth) => auth,
        Err(err) => {
            return match transport {
                Ok(transport) => Ok(state.browsers.forgetting(transport, Err(err))),
                Err(_) => Err(err),
            }
        }
    };
    let transport = transport?;
    let ended = state
        .revocations
        .end_all_of_user(auth.user_id, RevokeReason::LogoutAll)
        .await
        .map(|_| HttpResponse::NoContent().finish());
    Ok(state.browsers.forgetting(transport, ended))
}
