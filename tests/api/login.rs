use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, claims_of, spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn login_returns_a_token_pair() {
    let app = spawn_app().await;
    let email = app.new_user().await;

    let response = app.login(&email, PASSWORD).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let body: Value = response.json().await.unwrap();
    for key in ["access_token", "refresh_token", "session_id"] {
        assert!(body[key].is_string(), "{key}: {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    assert_eq!(body.as_object().unwrap().len(), 6);
}

#[tokio::test]
async fn login_tokens_carry_the_spec_claims() {
    let app = spawn_app().await;
    let (email, pair) = app.logged_in().await;
    let me: Value = app.me(&pair.access).await.json().await.unwrap();

    for (token, typ) in [(&pair.access, "access"), (&pair.refresh, "refresh")] {
        let claims = claims_of(token);
        assert_eq!(claims["typ"], typ);
        assert_eq!(claims["iss"], "authgate");
        assert_eq!(claims["aud"], "authgate-clients");
        assert_eq!(claims["sub"], me["id"]);
        assert_eq!(claims["sid"], pair.session_id.as_str());
        assert!(claims["jti"].is_string());
        assert!(claims["iat"].is_i64() && claims["exp"].is_i64());
        assert!(claims["roles"].is_array());
    }
    assert_ne!(
        claims_of(&pair.access)["jti"],
        claims_of(&pair.refresh)["jti"]
    );
    let header: Value = serde_json::from_slice(&crate::helpers::base64url_decode(
        pair.access.split('.').next().unwrap(),
    ))
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(me["email"], email);
}

#[tokio::test]
async fn login_is_case_insensitive_and_trims_the_email() {
    let app = spawn_app().await;
    app.signup("Erin@Example.org", PASSWORD).await;

    let response = app.login("  erin@EXAMPLE.org ", PASSWORD).await;

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_returns_the_same_401_for_a_wrong_password_and_an_unknown_email() {
    let app = spawn_app().await;
    let email = app.new_user().await;

    let wrong_password = app.login(&email, "not the password").await;
    let unknown_email = app.login("nobody@example.org", PASSWORD).await;

    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status(), StatusCode::UNAUTHORIZED);
    let a: Value = wrong_password.json().await.unwrap();
    let b: Value = unknown_email.json().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a["error"], "invalid_credentials");
}

#[tokio::test]
async fn login_of_an_unknown_email_spends_a_bcrypt_verification() {
    // At cost 10 a verification takes tens of milliseconds; an unknown email
    // must take about as long as a wrong password, not return at once.
    let app = spawn_app_with(|s| s.password.bcrypt_cost = 10).await;
    let email = app.new_user().await;
    let time = |email: String| {
        let app = &app;
        async move {
            let start = Instant::now();
            let response = app.login(&email, "wrong password!").await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            start.elapsed()
        }
    };
    let mut known = Duration::MAX;
    let mut unknown = Duration::MAX;
    for _ in 0..3 {
        known = known.min(time(email.clone()).await);
        unknown = unknown.min(time("ghost@example.org".into()).await);
    }
    assert!(
        unknown * 2 > known,
        "unknown {unknown:?} vs known {known:?}"
    );
}

#[tokio::test]
async fn login_returns_400_for_malformed_json_and_missing_fields() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app
        .post_json("/auth/login", &serde_json::json!({ "email": "a@b.c" }))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn login_rate_limits_an_email_after_repeated_failures_even_with_the_right_password() {
    let app = spawn_app_with(|s| {
        s.ratelimit.login_failures_per_email = 3;
        s.ratelimit.window_secs = 120;
    })
    .await;
    let email = app.new_user().await;
    let other = app.new_user().await;
    for _ in 0..3 {
        let response = app.login(&email, "wrong password!").await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    let response = app.login(&email, PASSWORD).await;

    let headers = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let retry_after: u64 = headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry_after), "{retry_after}");
    // Others are not slowed.
    assert_eq!(app.login(&other, PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_rate_limits_an_ip_across_emails() {
    let app = spawn_app_with(|s| {
        s.ratelimit.login_failures_per_ip = 2;
    })
    .await;
    let email = app.new_user().await;
    app.login("x1@example.org", "wrong password!").await;
    app.login("x2@example.org", "wrong password!").await;

    let response = app.login(&email, PASSWORD).await;

    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn successful_logins_are_not_counted() {
    let app = spawn_app_with(|s| s.ratelimit.login_failures_per_email = 2).await;
    let email = app.new_user().await;
    for _ in 0..5 {
        assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
    }
}
