//! `GET /account` and its assets (SPEC 8): the account page, compiled into
//! the binary from `assets/account/`, so that it needs nothing from another
//! origin and nothing on disk.
//!
//! Every file is served with the same security headers: a
//! Content-Security-Policy that allows only this origin's script, style,
//! images and API, with no inline code (and Trusted Types, so that the
//! script cannot turn a string into markup), `nosniff`, no referrer, no
//! framing. `Cache-Control: no-cache` with an ETag: the URLs carry no
//! version, so a browser keeps a copy but asks (a 304 costs no body)
//! before each use, and a new release is seen at the next load.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::openapi::account::{AccountIcon, AccountPage, AccountScript, AccountStyle, NotModified};

/// The policy of every file of the page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'; require-trusted-types-for 'script'; \
    trusted-types 'none'";

/// An embedded file and its validator.
pub struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    /// FNV-1a of the body, computed at compile time: a change detector for
    /// the ETag, not a security measure.
    hash: u64,
}

impl Asset {
    const fn new(body: &'static [u8], content_type: &'static str) -> Asset {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < body.len() {
            hash ^= body[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        Asset {
            body,
            content_type,
            hash,
        }
    }

    fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }

    /// Whether `If-None-Match` names this version (or `*`); weak tags
    /// compare equal too (RFC 9110 13.1.2).
    fn matches(&self, req: &HttpRequest) -> bool {
        let etag = self.etag();
        req.headers()
            .get_all(header::IF_NONE_MATCH)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|list| list.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag == etag)
    }

    fn serve(&self, req: &HttpRequest) -> HttpResponse {
        if self.matches(req) {
            return with_page_headers(HttpResponse::NotModified(), self).finish();
        }
        with_page_headers(HttpResponse::Ok(), self)
            .insert_header((header::CONTENT_TYPE, self.content_type))
            .body(self.body)
    }
}

fn with_page_headers(mut response: HttpResponseBuilder, asset: &Asset) -> HttpResponseBuilder {
    response
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("Cross-Origin-Opener-Policy", "same-origin"))
        .insert_header(("Cross-Origin-Resource-Policy", "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, asset.etag()));
    response
}

static PAGE: Asset = Asset::new(
    include_bytes!("../../assets/account/account.html"),
    "text/html; charset=utf-8",
);
static STYLE: Asset = Asset::new(
    include_bytes!("../../assets/account/account.css"),
    "text/css; charset=utf-8",
);
static SCRIPT: Asset = Asset::new(
    include_bytes!("../../assets/account/account.js"),
    "text/javascript; charset=utf-8",
);
static ICON: Asset = Asset::new(
    include_bytes!("../../assets/account/icon.svg"),
    "image/svg+xml",
);

/// The account page.
///
/// Sign up or log in, see this account's sessions and end them, log out here
/// or everywhere. It uses the API in cookie mode and keeps the access token
/// in memory only.
#[utoipa::path(
    get,
    path = "/account",
    tag = "account",
    responses(
        (status = 200, response = AccountPage),
        (status = 304, response = NotModified),
    )
)]
pub async fn page(req: HttpRequest) -> HttpResponse {
    PAGE.serve(&req)
}

/// The page's stylesheet.
#[utoipa::path(
    get,
    path = "/account/account.css",
    tag = "account",
    responses(
        (status = 200, response = AccountStyle),
        (status = 304, response = NotModified),
    )
)]
pub async fn style(req: HttpRequest) -> HttpResponse {
    STYLE.serve(&req)
}

/// The page's script (a JavaScript module).
#[utoipa::path(
    get,
    path = "/account/account.js",
    tag = "account",
    responses(
        (status = 200, response = AccountScript),
        (status = 304, response = NotModified),
    )
)]
pub async fn script(req: HttpRequest) -> HttpResponse {
    SCRIPT.serve(&req)
}

/// The page's icon.
#[utoipa::path(
    get,
    path = "/account/icon.svg",
    tag = "account",
    responses(
        (status = 200, response = AccountIcon),
        (status = 304, response = NotModified),
    )
)]
pub async fn icon(req: HttpRequest) -> HttpResponse {
    ICON.serve(&req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_etag_changes_with_the_body() {
        let one = Asset::new(b"a", "text/plain");
        let other = Asset::new(b"b", "text/plain");
        assert_ne!(one.etag(), other.etag());
        assert_eq!(one.etag(), Asset::new(b"a", "text/plain").etag());
        assert_eq!(one.etag().len(), 18);
    }

    #[test]
    fn if_none_match_matches_the_tag_in_a_list_weak_or_star() {
        let asset = Asset::new(b"body", "text/plain");
        let tag = asset.etag();
        for value in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"x\", {tag}"),
            "*".to_owned(),
        ] {
            let req = TestRequest::default()
                .insert_header((header::IF_NONE_MATCH, value.as_str()))
                .to_http_request();
            assert!(asset.matches(&req), "{value}");
        }
        let other = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "\"0000000000000000\""))
            .to_http_request();
        assert!(!asset.matches(&other));
        assert!(!asset.matches(&TestRequest::default().to_http_request()));
    }
}
