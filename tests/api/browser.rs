//! Browser clients (SPEC 8): cookie mode, its CSRF defence, and CORS.

use reqwest::header::{HeaderMap, COOKIE, ORIGIN, SET_COOKIE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const ALLOWED: &str = "https://app.example.com";
const FOREIGN: &str = "https://evil.example.net";

/// What one `Set-Cookie: authgate_refresh=…` says.
#[derive(Debug)]
struct SetCookie {
    value: String,
    attributes: Vec<String>,
}

impl SetCookie {
    fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }
}

/// The `authgate_refresh` cookie a response sets, if any (exactly one).
fn refresh_set_cookie(headers: &HeaderMap) -> Option<SetCookie> {
    let mut found: Vec<SetCookie> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|text| {
            let mut parts = text.split(';').map(str::trim);
            let value = parts.next()?.strip_prefix("authgate_refresh=")?.to_owned();
            Some(SetCookie {
                value,
                attributes: parts.map(str::to_owned).collect(),
            })
        })
        .collect();
    assert!(found.len() <= 1, "one authgate_refresh cookie at most");
    found.pop()
}

fn cookie_mode(request: RequestBuilder) -> RequestBuilder {
    request.header("Token-Transport", "cookie")
}

/// A cookie-mode POST to `path`.
fn cookie_post(app: &TestApp, path: &str) -> RequestBuilder {
    cookie_mode(app.client.post(app.url(path)))
}

fn with_cookie(request: RequestBuilder, refresh: &str) -> RequestBuilder {
    request.header(COOKIE, format!("authgate_refresh={refresh}"))
}

async fn browser_app() -> TestApp {
    spawn_app_with(|s| {
        s.browser.allowed_origins = vec![ALLOWED.to_owned()];
    })
    .await
}

/// A cookie-mode login: the access token (body) and the refresh token
/// (cookie).
async fn cookie_login(app: &TestApp, email: &str) -> (String, String) {
    let response = cookie_post(app, "/auth/login")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = refresh_set_cookie(response.headers()).expect("a refresh cookie");
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        cookie.value,
    )
}

async fn cookie_reissue(app: &TestApp, refresh: &str) -> Response {
    with_cookie(cookie_post(app, "/auth/reissue"), refresh)
        .send()
        .await
        .unwrap()
}

fn assert_cleared(response: &Response) {
    let cookie = refresh_set_cookie(response.headers()).expect("a cookie that clears");
    assert_eq!(cookie.value, "");
    assert!(cookie.has("Max-Age=0"), "{cookie:?}");
    assert!(cookie.has("Path=/auth"), "{cookie:?}");
}

#[tokio::test]
async fn a_cookie_mode_login_puts_the_refresh_token_in_an_httponly_cookie_only() {
    let app = browser_app().await;
    let email = app.new_user().await;

    let response = cookie_post(&app, "/auth/login")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = refresh_set_cookie(response.headers()).expect("Set-Cookie authgate_refresh");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"] {
        assert!(cookie.has(attribute), "{attribute} missing: {cookie:?}");
    }
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let max_age = format!("Max-Age={}", body["refresh_expires_in"]);
    assert!(cookie.has(&max_age), "{max_age} missing: {cookie:?}");
    assert_eq!(claims_of(&cookie.value)["typ"], "refresh");
    for key in ["access_token", "token_type", "expires_in", "session_id"] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(app.me(access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn cookie_secure_false_drops_only_the_secure_attribute() {
    let app = spawn_app_with(|s| s.browser.cookie_secure = false).await;
    let email = app.new_user().await;
    let response = cookie_post(&app, "/auth/login")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = refresh_set_cookie(response.headers()).unwrap();
    assert!(!cookie.has("Secure"), "{cookie:?}");
    assert!(cookie.has("HttpOnly") && cookie.has("SameSite=Strict"));
}

#[tokio::test]
async fn a_login_without_the_header_is_unchanged_and_sets_no_cookie() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let response = app.login(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(refresh_set_cookie(response.headers()).is_none());
    let body: Value = response.json().await.unwrap();
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn a_cookie_mode_reissue_rotates_the_cookie_and_the_chain_goes_on() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let (_, first) = cookie_login(&app, &email).await;

    let response = cookie_reissue(&app, &first).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second = refresh_set_cookie(response.headers()).expect("a new cookie");
    assert_ne!(second.value, first);
    assert!(second.has("HttpOnly") && second.has("SameSite=Strict"));
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(app.me(access).await.status(), StatusCode::OK);

    // With the access token beside it as Bearer (4.3), too.
    let response = with_cookie(cookie_post(&app, "/auth/reissue"), &second.value)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let third = refresh_set_cookie(response.headers()).unwrap();
    // A cookie-mode token is an ordinary refresh token: body mode takes it.
    app.reissue_ok(&third.value).await;
}

#[tokio::test]
async fn a_spent_cookie_that_comes_back_is_reuse_and_ends_the_session() {
    let app = spawn_app_with(|s| s.sessions.reuse_grace_secs = 0).await;
    let email = app.new_user().await;
    let (access, first) = cookie_login(&app, &email).await;
    let second = refresh_set_cookie(cookie_reissue(&app, &first).await.headers())
        .unwrap()
        .value;

    let replay = cookie_reissue(&app, &first).await;

    assert_cleared(&replay);
    assert_unauthorized(replay, "token_reused").await;
    assert_unauthorized(cookie_reissue(&app, &second).await, "session_revoked").await;
    assert_unauthorized(app.me(&access).await, "session_revoked").await;
}

#[tokio::test]
async fn a_cookie_repeat_within_the_grace_gets_the_same_cookie() {
    let app = spawn_app_with(|s| s.sessions.reuse_grace_secs = 30).await;
    let email = app.new_user().await;
    let (_, first) = cookie_login(&app, &email).await;

    let tab_one = cookie_reissue(&app, &first).await;
    let tab_two = cookie_reissue(&app, &first).await;

    assert_eq!(tab_one.status(), StatusCode::OK);
    assert_eq!(tab_two.status(), StatusCode::OK);
    let one = refresh_set_cookie(tab_one.headers()).unwrap().value;
    let two = refresh_set_cookie(tab_two.headers()).unwrap().value;
    assert_eq!(one, two, "two tabs must not fork the chain");
    assert_eq!(cookie_reissue(&app, &one).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_cookie_is_refused_and_cleared() {
    let app = spawn_app_with(|s| {
        s.jwt.access_ttl_secs = 5;
        s.jwt.refresh_ttl_secs = 10;
    })
    .await;
    let email = app.new_user().await;
    let (_, refresh) = cookie_login(&app, &email).await;
    app.advance(std::time::Duration::from_secs(11));

    let response = cookie_reissue(&app, &refresh).await;

    assert_cleared(&response);
    assert_unauthorized(response, "token_expired").await;
}

#[tokio::test]
async fn without_the_header_the_cookie_is_ignored() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let (_, refresh) = cookie_login(&app, &email).await;

    // What a cross-site form or a plain fetch would send: the cookie alone.
    let response = with_cookie(app.client.post(app.url("/auth/reissue")), &refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(refresh_set_cookie(response.headers()).is_none());
    let logout = with_cookie(app.client.post(app.url("/auth/logout")), &refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::UNAUTHORIZED);

    // Neither spent the token nor ended the session.
    assert_eq!(
        cookie_reissue(&app, &refresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_cookie_mode_reissue_takes_no_body_and_needs_the_cookie() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let (_, refresh) = cookie_login(&app, &email).await;

    let with_body = with_cookie(cookie_post(&app, "/auth/reissue"), &refresh)
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_error(with_body, StatusCode::BAD_REQUEST, "invalid_request").await;

    let without_cookie = cookie_post(&app, "/auth/reissue").send().await.unwrap();
    assert_error(without_cookie, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let empty_cookie = cookie_reissue(&app, "").await;
    assert_error(empty_cookie, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let garbage = cookie_reissue(&app, "not-a-jwt").await;
    assert_cleared(&garbage);
    assert_unauthorized(garbage, "invalid_token").await;

    // None of that spent the real one.
    assert_eq!(
        cookie_reissue(&app, &refresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_transport_takes_only_cookie() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("Token-Transport", "header")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn a_cookie_mode_request_from_a_foreign_origin_gets_403() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let (access, refresh) = cookie_login(&app, &email).await;
    let login = |origin: &'static str| {
        cookie_post(&app, "/auth/login")
            .header(ORIGIN, origin)
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
    };

    assert_error(
        login(FOREIGN).await.unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        login("null").await.unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(login(ALLOWED).await.unwrap().status(), StatusCode::OK);
    // This server's own origin (that of server.public_url) is always trusted.
    let own = cookie_post(&app, "/auth/login")
        .header(ORIGIN, app.address.clone())
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);

    let foreign = |path: &str| {
        with_cookie(cookie_post(&app, path), &refresh)
            .header(ORIGIN, FOREIGN)
            .bearer_auth(&access)
    };
    for path in ["/auth/reissue", "/auth/logout", "/auth/logout-all"] {
        let response = foreign(path).send().await.unwrap();
        assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    // Nothing of that reached the session.
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);
    assert_eq!(
        cookie_reissue(&app, &refresh).await.status(),
        StatusCode::OK
    );

    // A foreign origin is no business of a request without the header.
    let plain = app
        .client
        .post(app.url("/auth/login"))
        .header(ORIGIN, FOREIGN)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_with_the_cookie_alone_ends_the_session_and_clears_the_cookie() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let (access, refresh) = cookie_login(&app, &email).await;

    let response = with_cookie(cookie_post(&app, "/auth/logout"), &refresh)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_cleared(&response);
    assert_unauthorized(app.me(&access).await, "session_revoked").await;
    let again = cookie_reissue(&app, &refresh).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_cleared(&again);
}

#[tokio::test]
async fn cookie_mode_logout_with_a_bearer_and_logout_all_clear_the_cookie() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let (access, refresh) = cookie_login(&app, &email).await;
    let response = with_cookie(cookie_post(&app, "/auth/logout"), &refresh)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_cleared(&response);
    assert_unauthorized(app.me(&access).await, "session_revoked").await;

    let (one, _) = cookie_login(&app, &email).await;
    let (two, two_refresh) = cookie_login(&app, &email).await;
    let response = cookie_post(&app, "/auth/logout-all")
        .bearer_auth(&one)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_cleared(&response);
    assert_unauthorized(app.me(&two).await, "session_revoked").await;
    assert_eq!(
        cookie_reissue(&app, &two_refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_cookie_mode_logout_without_any_token_is_401_and_still_clears() {
    let app = browser_app().await;
    let response = cookie_post(&app, "/auth/logout").send().await.unwrap();
    assert_cleared(&response);
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

/// A CORS preflight for `path` from `origin`.
async fn preflight(app: &TestApp, path: &str, origin: &str) -> Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header(ORIGIN, origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, token-transport",
        )
        .send()
        .await
        .unwrap()
}

fn header_list(response: &Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|item| item.trim().to_ascii_lowercase())
        .collect()
}

fn assert_no_cors_headers(response: &Response) {
    for (name, _) in response.headers() {
        assert!(
            !name.as_str().starts_with("access-control-"),
            "{name} on a response to another origin"
        );
    }
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_gets_the_cors_answer() {
    let app = browser_app().await;
    for path in ["/auth/login", "/auth/reissue", "/auth/sessions/x"] {
        let response = preflight(&app, path, ALLOWED).await;
        assert!(
            matches!(response.status(), StatusCode::OK | StatusCode::NO_CONTENT),
            "{path}: {}",
            response.status()
        );
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], ALLOWED);
        assert_eq!(h["access-control-allow-credentials"], "true");
        let methods = header_list(&response, "access-control-allow-methods");
        for method in ["get", "post", "delete"] {
            assert!(methods.contains(&method.to_owned()), "{methods:?}");
        }
        let headers = header_list(&response, "access-control-allow-headers");
        for name in ["authorization", "content-type", "token-transport"] {
            assert!(headers.contains(&name.to_owned()), "{headers:?}");
        }
        assert!(header_list(&response, "vary").contains(&"origin".to_owned()));
    }
}

#[tokio::test]
async fn actual_responses_to_an_allowed_origin_carry_the_cors_headers() {
    let app = browser_app().await;
    let email = app.new_user().await;
    let response = cookie_post(&app, "/auth/login")
        .header(ORIGIN, ALLOWED)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], ALLOWED);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
    assert!(header_list(&response, "vary").contains(&"origin".to_owned()));
    // Errors too, so that the page can read what went wrong.
    let wrong = app
        .client
        .post(app.url("/auth/login"))
        .header(ORIGIN, ALLOWED)
        .json(&json!({"email": email, "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers()["access-control-allow-origin"], ALLOWED);
    assert!(header_list(&wrong, "access-control-expose-headers").contains(&"retry-after".into()));
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let app = browser_app().await;
    let response = preflight(&app, "/auth/login", FOREIGN).await;
    assert_no_cors_headers(&response);
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    let email = app.new_user().await;
    let actual = app
        .client
        .post(app.url("/auth/login"))
        .header(ORIGIN, FOREIGN)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status(), StatusCode::OK);
    assert_no_cors_headers(&actual);

    // With no allowed origin configured at all, none gets them.
    let closed = spawn_app().await;
    assert_no_cors_headers(&preflight(&closed, "/auth/login", ALLOWED).await);
    let me = closed
        .client
        .get(closed.url("/healthz"))
        .header(ORIGIN, ALLOWED)
        .send()
        .await
        .unwrap();
    assert_no_cors_headers(&me);
}

#[tokio::test]
async fn a_preflight_asking_for_another_header_is_refused_in_json() {
    let app = browser_app().await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/auth/login"))
        .header(ORIGIN, ALLOWED)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-something-else")
        .send()
        .await
        .unwrap();
    assert_no_cors_headers(&response);
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn logout_all_asks_for_its_bearer_token_before_anything_else() {
    let app = browser_app().await;
    let bad_header = app
        .client
        .post(app.url("/auth/logout-all"))
        .header("Token-Transport", "nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_header.status(), StatusCode::UNAUTHORIZED);
    let cookie_mode_without_bearer = cookie_post(&app, "/auth/logout-all").send().await.unwrap();
    assert_cleared(&cookie_mode_without_bearer);
    assert_eq!(
        cookie_mode_without_bearer.status(),
        StatusCode::UNAUTHORIZED
    );
}
