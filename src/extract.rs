//! Request parsing shared by the handlers: bodies (64 KiB, JSON only),
//! bearer tokens (RFC 6750), and the access-token extractor.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::mime;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{parse_bearer, TokenKind, VerifiedToken};

/// Largest request body accepted, chunked or not.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The raw request body, at most [`MAX_BODY_BYTES`]; larger is 413.
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Body, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            fut.await.map(Body).map_err(|err| {
                // PayloadError::Overflow, from a Content-Length over the limit
                // or from a chunked body that grows past it.
                if err.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::invalid_request("the request body could not be read")
                }
            })
        })
    }
}

impl Body {
    pub fn is_blank(&self) -> bool {
        self.0.iter().all(u8::is_ascii_whitespace)
    }

    /// Parses the body as JSON of `T`; the content type must be JSON.
    pub fn json<T: DeserializeOwned>(&self, req: &HttpRequest) -> Result<T, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == mime::APPLICATION
                    && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
            });
        if !is_json {
            return Err(ApiError::invalid_request(
                "the content type must be application/json",
            ));
        }
        serde_json::from_slice(&self.0).map_err(|err| {
            let what = if err.is_data() {
                "the JSON body lacks a field or has a wrong type"
            } else {
                "the body is not valid JSON"
            };
            ApiError::invalid_request(what)
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header. `Ok(None)` when
/// there is no header; `MissingToken` (a bare `Bearer` challenge) when it is
/// not a well-formed bearer header (see [`parse_bearer`]).
pub fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    match req.headers().get(header::AUTHORIZATION) {
        None => Ok(None),
        Some(value) => parse_bearer(value.as_bytes())
            .map(Some)
            .ok_or(ApiError::MissingToken),
    }
}

/// A caller authenticated by a live access token: signed by us, unexpired,
/// of a session not known to be revoked. No database round trip.
/// Its fields are the verified token's, through `Deref` (`auth.user_id`).
#[derive(Debug, Clone)]
pub struct Authenticated(pub VerifiedToken);

impl std::ops::Deref for Authenticated {
    type Target = VerifiedToken;

    fn deref(&self) -> &VerifiedToken {
        &self.0
    }
}

impl Authenticated {
    pub fn check(req: &HttpRequest) -> Result<Authenticated, ApiError> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered by startup");
        let token = bearer_token(req)?.ok_or(ApiError::MissingToken)?;
        let verified = state.issuer.keys().verify(token, TokenKind::Access)?;
        if verified.claims.is_expired_at(state.clock.unix()) {
            return Err(ApiError::TokenExpired);
        }
        if state.revocations.set().contains(verified.session_id) {
            return Err(ApiError::SessionRevoked);
        }
        Ok(Authenticated(verified))
    }

    pub fn is_admin(&self) -> bool {
        self.claims.roles.iter().any(|r| r == "admin")
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Authenticated, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Authenticated::check(req))
    }
}

/// Parses a path id after authentication: a malformed id is simply unknown.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}
