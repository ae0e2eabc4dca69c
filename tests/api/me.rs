use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    assert_bare_challenge, assert_error, assert_unauthorized, base64url_encode, claims_of,
    spawn_app, spawn_app_with,
};

#[tokio::test]
async fn me_returns_the_caller() {
    let app = spawn_app().await;
    let (email, pair) = app.logged_in().await;

    let response = app.me(&pair.access).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], email);
    assert_eq!(body["session_id"], pair.session_id.as_str());
    assert_eq!(body["id"], claims_of(&pair.access)["sub"]);
    assert!(body["roles"].is_array());
}

#[tokio::test]
async fn me_without_authorization_is_401_with_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    let response = app.get("/auth/me").await;
    assert_bare_challenge(response).await;
}

#[tokio::test]
async fn me_with_a_malformed_or_non_bearer_header_is_401_with_a_bare_challenge() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let with_spaces = format!("Bearer {} extra", pair.access);
    for value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        with_spaces.as_str(),
        "Token abc",
    ] {
        let response = app
            .client
            .get(app.url("/auth/me"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        let headers = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
        assert_eq!(
            headers.get("www-authenticate").unwrap(),
            "Bearer",
            "{value}"
        );
    }
    let non_ascii = reqwest::header::HeaderValue::from_bytes("Bearer tökén".as_bytes()).unwrap();
    let response = app
        .client
        .get(app.url("/auth/me"))
        .header("authorization", non_ascii)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn me_refuses_garbage_oversized_and_wrongly_signed_tokens() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let mut parts: Vec<String> = pair.access.split('.').map(str::to_owned).collect();
    parts[2] = base64url_encode(b"not the right signature at all!!");
    let wrong_signature = parts.join(".");
    let oversized = format!(
        "{}.{}.{}",
        "a".repeat(3000),
        "b".repeat(3000),
        "c".repeat(3000)
    );
    for token in [
        "garbage",
        "a.b.c",
        wrong_signature.as_str(),
        oversized.as_str(),
    ] {
        assert_unauthorized(app.me(token).await, "invalid_token").await;
    }
}

#[tokio::test]
async fn me_refuses_the_none_algorithm() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let payload = pair.access.split('.').nth(1).unwrap();
    let header = base64url_encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{header}.{payload}.");
    assert_unauthorized(app.me(&unsigned).await, "invalid_token").await;
}

#[tokio::test]
async fn me_refuses_a_token_signed_with_another_key_issuer_or_audience() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let claims: authgate::tokens::Claims = serde_json::from_value(claims_of(&pair.access)).unwrap();
    for (secret, iss, aud) in [
        (
            "another-secret-that-is-long-enough-123",
            "authgate",
            "authgate-clients",
        ),
        (
            "authgate-development-secret-do-not-use-in-production",
            "evil",
            "authgate-clients",
        ),
        (
            "authgate-development-secret-do-not-use-in-production",
            "authgate",
            "someone-else",
        ),
    ] {
        let keys =
            authgate::tokens::TokenKeys::new(&authgate::tokens::SecretKey::new(secret), iss, aud);
        let mut forged = claims.clone();
        forged.iss = iss.into();
        forged.aud = aud.into();
        assert_unauthorized(app.me(&keys.sign(&forged)).await, "invalid_token").await;
    }
}

#[tokio::test]
async fn me_refuses_a_refresh_token() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    assert_unauthorized(app.me(&pair.refresh).await, "invalid_token").await;
}

#[tokio::test]
async fn me_refuses_an_expired_access_token_with_token_expired() {
    let app = spawn_app_with(|s| s.jwt.access_ttl_secs = 1).await;
    let (_, pair) = app.logged_in().await;
    app.advance(std::time::Duration::from_secs(1));
    assert_unauthorized(app.me(&pair.access).await, "token_expired").await;
}
