//! `GET /account` (SPEC 8): one HTML page whose files all come from this
//! server, with a Content-Security-Policy that allows no inline code, and
//! markup that has none. What the page does in a browser is
//! tests/interop/test_account_page.py's (real Chromium).

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app, TestApp};

const PAGE: &str = "/account";

/// A start tag of the page: its name and attributes (lower-cased names,
/// values as written). Enough for our own markup: double-quoted values.
#[derive(Debug)]
struct Tag {
    name: String,
    attributes: Vec<(String, Option<String>)>,
}

impl Tag {
    fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

fn start_tags(html: &str) -> Vec<Tag> {
    let mut tags = Vec::new();
    for chunk in html.split('<').skip(1) {
        let Some((inside, _)) = chunk.split_once('>') else {
            continue;
        };
        if inside.starts_with('/') || inside.starts_with('!') {
            continue;
        }
        let (name, mut rest) = inside
            .split_once(char::is_whitespace)
            .unwrap_or((inside, ""));
        let mut attributes = Vec::new();
        loop {
            rest = rest.trim_start();
            let end = rest
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(rest.len());
            if end == 0 {
                break;
            }
            let attribute = rest[..end].to_lowercase();
            rest = &rest[end..];
            if let Some(after) = rest.strip_prefix("=\"") {
                let (value, after) = after.split_once('"').expect("a closing quote");
                attributes.push((attribute, Some(value.to_owned())));
                rest = after;
            } else {
                attributes.push((attribute, None));
            }
        }
        tags.push(Tag {
            name: name.to_lowercase(),
            attributes,
        });
    }
    tags
}

async fn fetch(app: &TestApp, path: &str) -> (HeaderMap, String) {
    let response = app.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

fn assert_page_headers(headers: &HeaderMap, path: &str) {
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for expected in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(
            directives.contains(&expected),
            "{path}: {expected} in {csp}"
        );
    }
    for loophole in [
        "unsafe-inline",
        "unsafe-eval",
        "unsafe-hashes",
        "data:",
        "*",
        "http",
    ] {
        assert!(!csp.contains(loophole), "{path}: {loophole} in {csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    assert_eq!(headers["cache-control"], "no-cache", "{path}");
    assert_eq!(headers["x-frame-options"], "DENY", "{path}");
    assert!(headers.contains_key("etag"), "{path}: ETag");
}

/// Every URL the page names (src, href, action), as written.
fn urls(html: &str) -> Vec<String> {
    start_tags(html)
        .iter()
        .flat_map(|tag| ["src", "href", "action"].map(|a| tag.get(a)))
        .flatten()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_account_page_is_html_with_its_security_headers() {
    let app = spawn_app().await;

    let (headers, html) = fetch(&app, PAGE).await;

    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_page_headers(&headers, PAGE);
    assert!(html.starts_with("<!doctype html>"), "{html}");
    let tags = start_tags(&html);
    let viewport = tags
        .iter()
        .find(|t| t.name == "meta" && t.get("name") == Some("viewport"))
        .expect("a viewport for phones");
    assert_eq!(
        viewport.get("content"),
        Some("width=device-width, initial-scale=1")
    );
    assert!(tags.iter().any(|t| t.name == "form"));
    assert!(tags.iter().any(|t| t.get("aria-live") == Some("polite")));
}

#[tokio::test]
async fn every_file_the_page_names_is_served_here_with_the_same_headers() {
    let app = spawn_app().await;
    let (_, html) = fetch(&app, PAGE).await;

    let mut served = Vec::new();
    for url in urls(&html) {
        assert!(
            url.starts_with('/') && !url.starts_with("//"),
            "{url}: not a path of this origin"
        );
        let (headers, body) = fetch(&app, &url).await;
        assert_page_headers(&headers, &url);
        assert!(!body.is_empty(), "{url}");
        let content_type = headers["content-type"].to_str().unwrap().to_owned();
        served.push((url, content_type));
    }

    served.sort();
    assert_eq!(
        served,
        [
            ("/account".to_owned(), "text/html; charset=utf-8".to_owned()),
            (
                "/account/account.css".to_owned(),
                "text/css; charset=utf-8".to_owned()
            ),
            (
                "/account/account.js".to_owned(),
                "text/javascript; charset=utf-8".to_owned()
            ),
            ("/account/icon.svg".to_owned(), "image/svg+xml".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_page_has_no_inline_script_style_or_event_handler() {
    let app = spawn_app().await;
    let (_, html) = fetch(&app, PAGE).await;
    let tags = start_tags(&html);
    assert!(tags.len() > 20, "the tags were not found: {tags:?}");

    for tag in &tags {
        assert_ne!(tag.name, "style", "a <style> element");
        for (attribute, _) in &tag.attributes {
            assert_ne!(attribute, "style", "style= on <{}>", tag.name);
            assert!(
                !attribute.starts_with("on"),
                "{attribute}= on <{}>",
                tag.name
            );
        }
        for (_, value) in &tag.attributes {
            let value = value.as_deref().unwrap_or("").to_lowercase();
            assert!(!value.starts_with("javascript:"), "<{}>", tag.name);
        }
    }
    let scripts: Vec<&Tag> = tags.iter().filter(|t| t.name == "script").collect();
    assert_eq!(scripts.len(), 1);
    assert_eq!(scripts[0].get("src"), Some("/account/account.js"));
    // Each <script src> is empty: no inline code beside it.
    for chunk in html.split("<script").skip(1) {
        let body = chunk.split_once('>').unwrap().1;
        assert!(body.starts_with("</script>"), "inline script: {chunk}");
    }
}

#[tokio::test]
async fn nothing_the_page_loads_names_another_origin_or_web_storage() {
    let app = spawn_app().await;
    let (_, html) = fetch(&app, PAGE).await;
    let (_, css) = fetch(&app, "/account/account.css").await;
    let (_, js) = fetch(&app, "/account/account.js").await;

    for (name, text) in [("html", &html), ("css", &css), ("js", &js)] {
        for other_origin in ["http:", "https:", "//fonts.", "@import"] {
            assert!(!text.contains(other_origin), "{name}: {other_origin}");
        }
    }
    assert!(!css.contains("url("), "css: url(");
    for storage in [
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "innerHTML",
    ] {
        assert!(!js.contains(storage), "js: {storage}");
    }
}

#[tokio::test]
async fn a_revalidation_with_the_current_etag_gets_304_without_a_body() {
    let app = spawn_app().await;
    let (headers, _) = fetch(&app, PAGE).await;
    let etag = headers["etag"].to_str().unwrap().to_owned();

    let response = app
        .client
        .get(app.url(PAGE))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_page_headers(&response.headers().clone(), PAGE);
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());

    let stale = app
        .client
        .get(app.url(PAGE))
        .header("if-none-match", "\"0123456789abcdef\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn other_methods_on_the_page_and_its_files_get_405_with_allow() {
    let app = spawn_app().await;
    for path in [PAGE, "/account/account.js", "/account/account.css"] {
        let response = app.client.post(app.url(path)).send().await.unwrap();
        let headers =
            assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
        assert_eq!(headers["allow"], "GET", "{path}");
    }
    let unknown = app.get("/account/other.js").await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
}
