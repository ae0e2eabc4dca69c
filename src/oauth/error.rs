//! The errors of the `/oauth/*` endpoints (SPEC 7.2): RFC 6749 §5.2 bodies,
//! `{"error": "<code>", "error_description": "<text>"}`, whose codes are the
//! RFC's, not the closed set of SPEC 3 (that is [`ApiError`], which the
//! rest of the API answers with). Domain code returns `ApiError`; the OAuth
//! handlers convert it here, and internal causes stay in the log.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde::Serialize;

use crate::error::ApiError;

/// The challenge of a 401 `invalid_client` (RFC 6749 §5.2, RFC 7617).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"authgate\"";

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A parameter is missing, repeated or malformed, or the body is not
    /// form-encoded.
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("the request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("this path does not take that method")]
    MethodNotAllowed(&'static str),
    /// Missing or wrong client credentials (introspection).
    #[error("{0}")]
    InvalidClient(&'static str),
    /// The refresh token is not ours, expired, spent or of an ended session.
    #[error("{0}")]
    InvalidGrant(String),
    #[error("only the refresh_token grant is offered; log in at /auth/login")]
    UnsupportedGrantType,
    /// The database did not answer in time (RFC 6749 §4.1.2.1's name).
    #[error("the service is unavailable; try again shortly")]
    TemporarilyUnavailable,
    #[error("internal error")]
    ServerError,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

impl OAuthError {
    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::PayloadTooLarge
            | OAuthError::MethodNotAllowed(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthError::ServerError => "server_error",
        }
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, which RFC 6749 §5.1
/// asks of every answer that carries tokens or their secrets.
pub fn no_store(mut response: HttpResponseBuilder) -> HttpResponseBuilder {
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    response
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::InvalidGrant(_)
            | OAuthError::UnsupportedGrantType => StatusCode::BAD_REQUEST,
            OAuthError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
            OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = no_store(HttpResponse::build(self.status_code()));
        match self {
            OAuthError::InvalidClient(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, BASIC_CHALLENGE));
            }
            OAuthError::MethodNotAllowed(allow) => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            error_description: self.to_string(),
        })
    }
}

impl From<ApiError> for OAuthError {
    /// The token errors of reissue become `invalid_grant` (the only
    /// endpoint that lets them out is the token endpoint); the database's
    /// 503 becomes `temporarily_unavailable`; an internal fault is logged
    /// by `ApiError` and answered as a bare `server_error`.
    fn from(err: ApiError) -> OAuthError {
        match err {
            ApiError::InvalidRequest(_) => {
                OAuthError::InvalidRequest("the request could not be read")
            }
            ApiError::PayloadTooLarge => OAuthError::PayloadTooLarge,
            ApiError::MethodNotAllowed(allow) => OAuthError::MethodNotAllowed(allow),
            ApiError::MissingToken
            | ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::TokenReused
            | ApiError::SessionRevoked => OAuthError::InvalidGrant(err.to_string()),
            ApiError::Unavailable => OAuthError::TemporarilyUnavailable,
            ApiError::Internal(cause) => {
                log::error!("internal error: {cause:#}");
                OAuthError::ServerError
            }
            ApiError::InvalidCredentials
            | ApiError::EmailTaken
            | ApiError::Forbidden
            | ApiError::ForeignOrigin
            | ApiError::MissingCookie
            | ApiError::NotFound
            | ApiError::RateLimited { .. } => {
                log::error!("unexpected error under /oauth/: {err}");
                OAuthError::ServerError
            }
        }
    }
}

/// Database trouble is answered as the rest of the API answers it (503
/// when it does not answer), in this format.
impl From<crate::db::DbUnavailable> for OAuthError {
    fn from(err: crate::db::DbUnavailable) -> OAuthError {
        ApiError::from(err).into()
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(err: diesel::result::Error) -> OAuthError {
        ApiError::from(err).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn answer(err: OAuthError) -> (StatusCode, header::HeaderMap, serde_json::Value) {
        let response = err.error_response();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = to_bytes(response.into_body()).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[actix_web::test]
    async fn the_database_down_is_503_temporarily_unavailable() {
        let (status, headers, body) = answer(ApiError::Unavailable.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "temporarily_unavailable");
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    }

    #[actix_web::test]
    async fn internal_faults_are_server_error_without_their_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("SELECT secret FROM users"));
        let (status, _, body) = answer(err.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "server_error");
        assert!(!body.to_string().contains("SELECT"));
    }

    #[actix_web::test]
    async fn every_refusal_of_a_refresh_token_is_invalid_grant() {
        for err in [
            ApiError::InvalidToken,
            ApiError::TokenExpired,
            ApiError::TokenReused,
            ApiError::SessionRevoked,
        ] {
            let (status, _, body) = answer(err.into()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(body["error"], "invalid_grant");
            assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        }
    }

    #[actix_web::test]
    async fn invalid_client_carries_a_basic_challenge() {
        let (status, headers, body) = answer(OAuthError::InvalidClient("no")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(headers.get("www-authenticate").unwrap(), BASIC_CHALLENGE);
    }
}
