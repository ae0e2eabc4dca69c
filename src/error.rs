//! The one error type of the HTTP API.
//!
//! Handlers and the domain code they call return `Result<_, ApiError>`. Each
//! variant is one of the spec's closed set of error codes (plus `Internal`,
//! which is answered as a generic `unavailable` and logged). The response is
//! always `{"error": code, "message": text}`; internal causes go to the log,
//! never to the client. `From` impls for pool, diesel and blocking-pool errors
//! keep `?` working.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("this path does not take that method")]
    MethodNotAllowed(&'static str),
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("an account with this email already exists")]
    EmailTaken,
    /// No usable `Authorization: Bearer` header at all (RFC 6750 §3.1: the
    /// challenge then carries no error code).
    #[error("a bearer token is required")]
    MissingToken,
    #[error("the token is invalid")]
    InvalidToken,
    #[error("the token has expired")]
    TokenExpired,
    #[error("the refresh token was already used; the session has been revoked")]
    TokenReused,
    #[error("the session has ended; log in again")]
    SessionRevoked,
    #[error("this needs a role the caller does not have")]
    Forbidden,
    /// A cookie-mode request from an origin that is neither this server's
    /// nor in `browser.allowed_origins` (SPEC 8).
    #[error("this origin may not make cookie-mode requests")]
    ForeignOrigin,
    /// A cookie-mode request that needs the refresh cookie came without it.
    #[error("no refresh cookie came with this request; log in again")]
    MissingCookie,
    #[error("not found")]
    NotFound,
    #[error("too many failed logins; try again later")]
    RateLimited { retry_after_secs: u64 },
    #[error("the service is unavailable; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The closed set of error codes (SPEC 3); no other exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidCredentials,
    EmailTaken,
    InvalidToken,
    TokenExpired,
    TokenReused,
    SessionRevoked,
    Forbidden,
    NotFound,
    RateLimited,
    Unavailable,
}

impl ErrorCode {
    /// Every code of the closed set.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidCredentials,
        ErrorCode::EmailTaken,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::TokenReused,
        ErrorCode::SessionRevoked,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::EmailTaken => "email_taken",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenReused => "token_reused",
            ErrorCode::SessionRevoked => "session_revoked",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// The body of every error of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// For a human; never a stack trace, SQL text or secret.
    pub message: String,
}

impl ApiError {
    /// The spec's error code.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    pub fn error_code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::PayloadTooLarge
            | ApiError::MethodNotAllowed(_) => ErrorCode::InvalidRequest,
            ApiError::InvalidCredentials => ErrorCode::InvalidCredentials,
            ApiError::EmailTaken => ErrorCode::EmailTaken,
            ApiError::MissingToken | ApiError::MissingCookie | ApiError::InvalidToken => {
                ErrorCode::InvalidToken
            }
            ApiError::TokenExpired => ErrorCode::TokenExpired,
            ApiError::TokenReused => ErrorCode::TokenReused,
            ApiError::SessionRevoked => ErrorCode::SessionRevoked,
            ApiError::Forbidden | ApiError::ForeignOrigin => ErrorCode::Forbidden,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable | ApiError::Internal(_) => ErrorCode::Unavailable,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest(message.into())
    }

    /// The RFC 6750 challenge for a 401 about a bearer token.
    fn challenge(&self) -> Option<String> {
        match self {
            ApiError::MissingToken | ApiError::MissingCookie => Some("Bearer".to_owned()),
            ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::TokenReused
            | ApiError::SessionRevoked => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{self}\""
            )),
            ApiError::Forbidden => {
                Some("Bearer error=\"insufficient_scope\", scope=\"admin\"".to_owned())
            }
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidCredentials
            | ApiError::MissingToken
            | ApiError::MissingCookie
            | ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::TokenReused
            | ApiError::SessionRevoked => StatusCode::UNAUTHORIZED,
            ApiError::EmailTaken => StatusCode::CONFLICT,
            ApiError::Forbidden | ApiError::ForeignOrigin => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            log::error!("internal error: {cause:#}");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = self.challenge() {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        match self {
            ApiError::MethodNotAllowed(allow) => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            ApiError::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.error_code(),
            message: self.to_string(),
        })
    }
}

impl From<crate::db::DbUnavailable> for ApiError {
    fn from(err: crate::db::DbUnavailable) -> ApiError {
        log::warn!("{err}");
        ApiError::Unavailable
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> ApiError {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => {
                log::warn!("database connection lost: {}", info.message());
                crate::db::note_connection_lost();
                ApiError::Unavailable
            }
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
                log::warn!("database conflict: {}", info.message());
                ApiError::Unavailable
            }
            Error::DatabaseError(_, info) if is_deadline(info.message()) => {
                log::warn!("database deadline: {}", info.message());
                ApiError::Unavailable
            }
            Error::NotFound => ApiError::NotFound,
            other => ApiError::Internal(other.into()),
        }
    }
}

/// Whether PostgreSQL gave up on a statement because of one of our
/// deadlines (`statement_timeout`, `lock_timeout`; SQLSTATE 57014 and
/// 55P03). diesel does not expose the SQLSTATE, so the (English) message
/// is matched: the clusters we start use the C locale.
fn is_deadline(message: &str) -> bool {
    message.starts_with("canceling statement due to")
        || message.starts_with("could not obtain lock")
        || message.contains("due to idle-in-transaction timeout")
}

impl From<crate::tokens::TokenError> for ApiError {
    fn from(_: crate::tokens::TokenError) -> ApiError {
        ApiError::InvalidToken
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> ApiError {
        ApiError::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(err: ApiError) -> serde_json::Value {
        let bytes = to_bytes(err.error_response().into_body()).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[actix_web::test]
    async fn internal_errors_do_not_leak_their_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("SELECT secret FROM users"));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(err).await;
        assert_eq!(body["error"], "unavailable");
        assert!(!body.to_string().contains("SELECT"));
    }

    #[actix_web::test]
    async fn a_missing_token_gets_a_bare_bearer_challenge() {
        let response = ApiError::MissingToken.error_response();
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            "Bearer"
        );
        let response = ApiError::TokenExpired.error_response();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""));
    }

    #[test]
    fn every_code_serialises_as_its_name() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[actix_web::test]
    async fn rate_limited_carries_retry_after() {
        let response = ApiError::RateLimited {
            retry_after_secs: 42,
        }
        .error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get("retry-after").unwrap(), "42");
    }
}
