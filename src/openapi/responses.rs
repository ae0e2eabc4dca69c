//! The responses that operations share, as OpenAPI response components: the
//! errors, each the `ErrorBody` schema under `application/json` with the
//! headers that `ApiError::error_response` sends for that status, and the
//! token pair.
//! Handlers name them in `#[utoipa::path(responses(...))]`, e.g.
//! `(status = 401, response = Unauthorized)`.

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::ToResponse;

/// An error response: `ErrorBody` plus the given headers.
fn error(description: &str, headers: Vec<(&str, Header)>) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    for (name, header) in headers {
        response = response.header(name, header);
    }
    response.build().into()
}

/// A string header whose value matches `pattern` (every response component
/// of this document spells its headers with it).
pub(crate) fn string_header(pattern: &str, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        )
        .description(Some(description))
        .build()
}

/// `Cache-Control: no-store` (RFC 6749 5.1), on every answer that carries
/// tokens.
fn no_store() -> Header {
    string_header(
        "^no-store$",
        "no-store: responses with tokens are not to be cached",
    )
}

/// `Set-Cookie: authgate_refresh=…`, sent in cookie mode only (SPEC 8).
pub fn set_cookie() -> Header {
    string_header(
        "^authgate_refresh=",
        "Cookie mode only (`Token-Transport: cookie`): the refresh token as \
         `authgate_refresh=<token>; HttpOnly; Secure; SameSite=Strict; Path=/auth; \
         Max-Age=<refresh_expires_in>`, or that cookie cleared (`Max-Age=0`) by \
         logout and by a refused cookie",
    )
}

macro_rules! error_response {
    ($(#[$doc:meta])* $name:ident, $description:expr $(, $header:expr)* $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), error($description, vec![$($header),*]))
            }
        }
    };
}

error_response!(
    BadRequest,
    "`invalid_request`: a malformed or missing JSON body, a content type \
     other than JSON, a missing field or a field of the wrong type, or a value \
     the rules refuse"
);

error_response!(
    /// A 401 about the bearer token of an endpoint that takes one (RFC 6750).
    Unauthorized,
    "`invalid_token`, `token_expired`, `token_reused` or `session_revoked`. \
     A missing or malformed Authorization header gets the bare challenge \
     `Bearer`; a token that is refused gets \
     `Bearer error=\"invalid_token\", error_description=\"…\"`",
    (
        "WWW-Authenticate",
        string_header("^Bearer($| error=\"invalid_token\")", "the RFC 6750 challenge")
    ),
);

error_response!(
    /// Login's 401: no challenge, credentials are not a bearer token.
    InvalidCredentials,
    "`invalid_credentials`: the same body, and about the same time, for an \
     unknown email and for a wrong password"
);

error_response!(
    Forbidden,
    "`forbidden`: the caller lacks the role this needs",
    (
        "WWW-Authenticate",
        string_header(
            "^Bearer error=\"insufficient_scope\"",
            "the RFC 6750 challenge, naming the missing role as the scope"
        )
    ),
);

error_response!(
    /// SPEC 8's CSRF defence: no challenge, the token is not the problem.
    ForeignOrigin,
    "`forbidden`: a cookie-mode request (`Token-Transport: cookie`) whose \
     `Origin` is neither this server's nor in `browser.allowed_origins`"
);

error_response!(
    NotFound,
    "`not_found`: no such thing for this caller; a malformed id is an \
     unknown id"
);

error_response!(
    EmailTaken,
    "`email_taken`: an account with this email (compared case-insensitively) \
     exists"
);

error_response!(
    PayloadTooLarge,
    "`invalid_request`: the body is over 64 KiB, chunked or not"
);

error_response!(
    TooManyRequests,
    "`rate_limited`: too many failed logins for this email or from this \
     address within the window, even with the right password",
    (
        "Retry-After",
        HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
            )
            .description(Some("whole seconds until a login may succeed again"))
            .build()
    ),
);

error_response!(
    Unavailable,
    "`unavailable`: PostgreSQL did not answer within the request's deadline; \
     try again shortly"
);

/// A token pair (login, reissue), never to be cached.
pub struct Tokens;

impl<'s> ToResponse<'s> for Tokens {
    fn response() -> (&'s str, RefOr<Response>) {
        let response = ResponseBuilder::new()
            .description("A token pair of the session (lifetimes in seconds)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(
                        AnyOfBuilder::new()
                            .item(Ref::from_schema_name("TokenPair"))
                            .item(Ref::from_schema_name("CookieTokens")),
                    ))
                    .build(),
            )
            .header("Cache-Control", no_store())
            .header("Set-Cookie", set_cookie())
            .build();
        ("Tokens", response.into())
    }
}
