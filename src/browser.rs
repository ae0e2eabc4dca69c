//! Browser clients (SPEC 8): cookie mode and CORS.
//!
//! A login, reissue or logout that carries `Token-Transport: cookie` keeps
//! the refresh token in an `HttpOnly` cookie that JavaScript cannot read,
//! instead of in the JSON body. The custom header is the CSRF defence (a
//! cross-site form cannot send one; without it the cookie is ignored),
//! together with `SameSite=Strict` and a check of `Origin`. CORS for
//! `browser.allowed_origins` comes from actix-cors.

use actix_cors::{Cors, CorsError};
use actix_web::body::MessageBody;
use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::BrowserSettings;
use crate::error::ApiError;
use crate::sessions::TokenPair;

/// The request header that chooses cookie mode.
pub const TRANSPORT_HEADER: HeaderName = HeaderName::from_static("token-transport");
/// The name of the refresh-token cookie.
pub const REFRESH_COOKIE: &str = "authgate_refresh";
/// The cookie goes only to `/auth/*`: reissue and logout.
const COOKIE_PATH: &str = "/auth";
/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: usize = 600;

/// The one value of the `Token-Transport` header, as the OpenAPI document
/// names it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenTransport {
    /// The refresh token in the `authgate_refresh` cookie (SPEC 8).
    Cookie,
}

/// Where a request wants its refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// In the JSON body (SPEC 3): the default.
    Body,
    /// In the `authgate_refresh` cookie (SPEC 8).
    Cookie,
}

/// The token pair of a cookie-mode response: the refresh token is in the
/// cookie, never in the body.
#[derive(Debug, Serialize, ToSchema)]
pub struct CookieTokens {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, pattern = "^Bearer$")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Seconds until the refresh token (the cookie) expires.
    pub refresh_expires_in: i64,
    pub session_id: Uuid,
}

/// The browser policy of one server: its own origin, the origins it allows,
/// and the cookie's `Secure` attribute.
#[derive(Debug, Clone)]
pub struct Browsers {
    own_origin: Option<String>,
    allowed: Vec<String>,
    cookie_secure: bool,
}

impl Browsers {
    /// `public_url` is the server's `server.public_url` (its origin is
    /// always allowed). Origins that cannot be parsed are logged and left
    /// out: start-up refuses only what SPEC 2 names.
    pub fn new(settings: &BrowserSettings, public_url: &str) -> Browsers {
        let allowed = settings
            .allowed_origins
            .iter()
            .filter_map(|origin| match origin_of(origin) {
                Some(normal) => {
                    if normal != origin.trim().trim_end_matches('/') {
                        log::warn!(
                            "browser.allowed_origins: {origin:?} is taken as the origin {normal:?}"
                        );
                    }
                    Some(normal)
                }
                None => {
                    log::warn!(
                        "browser.allowed_origins: {origin:?} is not an origin \
                         (scheme://host[:port]); it is ignored"
                    );
                    None
                }
            })
            .collect();
        Browsers {
            own_origin: origin_of(public_url),
            allowed,
            cookie_secure: settings.cookie_secure,
        }
    }

    /// Whether a browser page of `origin` may make cookie-mode requests.
    pub fn trusts(&self, origin: &str) -> bool {
        self.own_origin.as_deref() == Some(origin) || self.allowed.iter().any(|o| o == origin)
    }

    /// The transport a request asks for. A cookie-mode request whose
    /// `Origin` is present and not trusted is refused with 403 `forbidden`.
    pub fn transport(&self, req: &HttpRequest) -> Result<Transport, ApiError> {
        let Some(value) = req.headers().get(TRANSPORT_HEADER) else {
            return Ok(Transport::Body);
        };
        if value.as_bytes() != b"cookie" {
            return Err(ApiError::invalid_request(
                "Token-Transport takes one value: cookie",
            ));
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            if !origin.to_str().is_ok_and(|origin| self.trusts(origin)) {
                return Err(ApiError::ForeignOrigin);
            }
        }
        Ok(Transport::Cookie)
    }

    /// The 200 answer with a token pair: all of it in the body, or in
    /// cookie mode the refresh token as the cookie. Never cached.
    pub fn tokens(&self, transport: Transport, pair: TokenPair) -> HttpResponse {
        let mut response = HttpResponse::Ok();
        // RFC 6749 §5.1: responses with tokens are not to be cached.
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match transport {
            Transport::Body => response.json(pair),
            Transport::Cookie => {
                response.cookie(self.refresh_cookie(&pair.refresh_token, pair.refresh_expires_in));
                response.json(CookieTokens {
                    access_token: pair.access_token,
                    token_type: pair.token_type,
                    expires_in: pair.expires_in,
                    refresh_expires_in: pair.refresh_expires_in,
                    session_id: pair.session_id,
                })
            }
        }
    }

    /// `result` as a response that, in cookie mode, also removes the cookie:
    /// for logout (whatever its outcome), and for a reissue whose refresh
    /// token will never work again (any 401).
    pub fn forgetting(
        &self,
        transport: Transport,
        result: Result<HttpResponse, ApiError>,
    ) -> HttpResponse {
        let mut response = result.unwrap_or_else(|err| err.error_response());
        if transport == Transport::Cookie {
            // A Set-Cookie made by us from a fixed name is always valid.
            let _ = response.add_cookie(&self.removal_cookie());
        }
        response
    }

    /// Like [`Browsers::forgetting`], for a reissue: only a 401 removes the
    /// cookie (a 503 says nothing about the token).
    pub fn tokens_or_forget(
        &self,
        transport: Transport,
        result: Result<TokenPair, ApiError>,
    ) -> HttpResponse {
        match result {
            Ok(pair) => self.tokens(transport, pair),
            Err(err) if err.status_code() == actix_web::http::StatusCode::UNAUTHORIZED => {
                self.forgetting(transport, Err(err))
            }
            Err(err) => err.error_response(),
        }
    }

    fn refresh_cookie(&self, token: &str, max_age_secs: i64) -> Cookie<'static> {
        Cookie::build(REFRESH_COOKIE, token.to_owned())
            .http_only(true)
            .secure(self.cookie_secure)
            .same_site(SameSite::Strict)
            .path(COOKIE_PATH)
            .max_age(time::Duration::seconds(max_age_secs.max(0)))
            .finish()
    }

    fn removal_cookie(&self) -> Cookie<'static> {
        self.refresh_cookie("", 0)
    }

    /// Whether any origin besides this server's own may call with
    /// credentials, i.e. whether CORS is needed at all.
    pub fn allows_other_origins(&self) -> bool {
        !self.allowed.is_empty()
    }

    /// The CORS middleware: credentials for the allowed origins (this
    /// server's own origin needs none), nothing for any other.
    pub fn cors(&self) -> Cors {
        let cors = Cors::default()
            .allowed_methods(["GET", "POST", "DELETE"])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                TRANSPORT_HEADER,
            ])
            .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
            .supports_credentials()
            .max_age(PREFLIGHT_MAX_AGE_SECS);
        self.allowed
            .iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin))
    }
}

/// The refresh token of the `authgate_refresh` cookie, if the request has one.
pub fn refresh_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(REFRESH_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| !value.is_empty())
}

/// The ASCII serialisation of a URL's origin (`https://host[:port]`, the
/// default port left out, as browsers send `Origin`), or None for a URL
/// without one.
fn origin_of(url: &str) -> Option<String> {
    let origin = Url::parse(url.trim()).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Wraps [`Browsers::cors`] so that other origins get no CORS header at all
/// (actix-cors adds `Access-Control-Expose-Headers` to every response), and
/// a preflight it refuses gets the API's JSON error body (SPEC 3) instead
/// of plain text.
pub async fn cors_for_allowed_origins_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let refused = response
        .response()
        .error()
        .and_then(|err| err.as_error::<CorsError>())
        .map(|err| format!("CORS: {err}"));
    if let Some(message) = refused {
        return Ok(response
            .into_response(ApiError::invalid_request(message).error_response())
            .map_into_right_body());
    }
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        let cors: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors {
            headers.remove(name);
        }
    }
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn browsers(allowed: &[&str]) -> Browsers {
        Browsers::new(
            &BrowserSettings {
                allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
                cookie_secure: true,
            },
            "https://auth.example.com/base/",
        )
    }

    #[test]
    fn origins_are_normalised_as_browsers_send_them() {
        assert_eq!(
            origin_of("https://App.Example.com:443/path").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("not a url"), None);
        assert_eq!(origin_of("data:text/plain,x"), None);
    }

    #[test]
    fn the_own_origin_and_the_allowed_ones_are_trusted_and_no_other() {
        let b = browsers(&["https://app.example.com/", "nonsense"]);
        assert!(b.trusts("https://auth.example.com"));
        assert!(b.trusts("https://app.example.com"));
        assert!(!b.trusts("https://evil.example.com"));
        assert!(!b.trusts("null"));
        assert_eq!(b.allowed, ["https://app.example.com"]);
    }

    #[test]
    fn the_transport_header_is_cookie_or_absent() {
        let b = browsers(&[]);
        let none = TestRequest::default().to_http_request();
        assert_eq!(b.transport(&none).unwrap(), Transport::Body);
        let cookie = TestRequest::default()
            .insert_header((TRANSPORT_HEADER, "cookie"))
            .to_http_request();
        assert_eq!(b.transport(&cookie).unwrap(), Transport::Cookie);
        for other in ["body", "Cookie", "cookie, cookie", ""] {
            let other = TestRequest::default()
                .insert_header((TRANSPORT_HEADER, other))
                .to_http_request();
            assert_eq!(b.transport(&other).unwrap_err().code(), "invalid_request");
        }
    }

    #[test]
    fn a_cookie_mode_request_from_a_foreign_origin_is_forbidden() {
        let b = browsers(&["https://app.example.com"]);
        let request = |origin: &str| {
            TestRequest::default()
                .insert_header((TRANSPORT_HEADER, "cookie"))
                .insert_header((header::ORIGIN, origin))
                .to_http_request()
        };
        assert_eq!(
            b.transport(&request("https://app.example.com")).unwrap(),
            Transport::Cookie
        );
        assert_eq!(
            b.transport(&request("https://evil.example.com"))
                .unwrap_err()
                .code(),
            "forbidden"
        );
        // Without the header the origin does not matter: no cookie is used.
        let plain = TestRequest::default()
            .insert_header((header::ORIGIN, "https://evil.example.com"))
            .to_http_request();
        assert_eq!(b.transport(&plain).unwrap(), Transport::Body);
    }

    #[test]
    fn the_refresh_cookie_has_the_attributes_of_spec_8() {
        let text = browsers(&[])
            .refresh_cookie("abc.def.ghi", 1209600)
            .to_string();
        for part in [
            "authgate_refresh=abc.def.ghi",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/auth",
            "Max-Age=1209600",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        let insecure = Browsers::new(
            &BrowserSettings {
                allowed_origins: vec![],
                cookie_secure: false,
            },
            "http://127.0.0.1:8080",
        );
        assert!(!insecure
            .refresh_cookie("t", 1)
            .to_string()
            .contains("Secure"));
    }
}
