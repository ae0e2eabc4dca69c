use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_bare_challenge, assert_error, assert_unauthorized, spawn_app};

#[tokio::test]
async fn logout_with_the_access_token_ends_the_session() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;

    let response = app.post_with("/auth/logout", &pair.access).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_unauthorized(app.me(&pair.access).await, "session_revoked").await;
    assert_unauthorized(app.reissue(&pair.refresh).await, "session_revoked").await;
}

#[tokio::test]
async fn logout_with_the_refresh_token_in_the_body_ends_the_session() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;

    let response = app
        .post_json("/auth/logout", &json!({ "refresh_token": pair.refresh }))
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_unauthorized(app.me(&pair.access).await, "session_revoked").await;
    assert_unauthorized(app.reissue(&pair.refresh).await, "session_revoked").await;
}

#[tokio::test]
async fn logout_ends_only_its_own_session() {
    let app = spawn_app().await;
    let (email, pair) = app.logged_in().await;
    let other = app.login_ok(&email).await;

    app.post_with("/auth/logout", &pair.access).await;

    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);
    app.reissue_ok(&other.refresh).await;
}

#[tokio::test]
async fn logout_without_any_token_is_401() {
    let app = spawn_app().await;
    let response = app.post("/auth/logout").await;
    assert_bare_challenge(response).await;
}

#[tokio::test]
async fn logout_refuses_bad_tokens() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    assert_unauthorized(
        app.post_with("/auth/logout", "garbage").await,
        "invalid_token",
    )
    .await;
    // A refresh token where the access token belongs, and the reverse.
    assert_unauthorized(
        app.post_with("/auth/logout", &pair.refresh).await,
        "invalid_token",
    )
    .await;
    let response = app
        .post_json("/auth/logout", &json!({ "refresh_token": pair.access }))
        .await;
    assert_unauthorized(response, "invalid_token").await;
    // Nothing was ended by those.
    assert_eq!(app.me(&pair.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_twice_is_401_session_revoked() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    app.post_with("/auth/logout", &pair.access).await;

    assert_unauthorized(
        app.post_with("/auth/logout", &pair.access).await,
        "session_revoked",
    )
    .await;
    let response = app
        .post_json("/auth/logout", &json!({ "refresh_token": pair.refresh }))
        .await;
    assert_unauthorized(response, "session_revoked").await;
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_caller_only() {
    let app = spawn_app().await;
    let (email, first) = app.logged_in().await;
    let second = app.login_ok(&email).await;
    let (_, stranger) = app.logged_in().await;

    let response = app.post_with("/auth/logout-all", &first.access).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for pair in [&first, &second] {
        assert_unauthorized(app.me(&pair.access).await, "session_revoked").await;
        assert_unauthorized(app.reissue(&pair.refresh).await, "session_revoked").await;
    }
    assert_eq!(app.me(&stranger.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_all_without_a_token_is_401() {
    let app = spawn_app().await;
    let response = app.post("/auth/logout-all").await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
