//! SPEC 4.3's defences: the grace window, pair binding, the four expiry
//! cases, and the session's absolute lifetime.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{assert_unauthorized, spawn_app_with, Pair};

#[tokio::test]
async fn a_repeat_within_the_grace_window_gets_the_very_same_refresh_token() {
    let app = spawn_app_with(|s| s.sessions.reuse_grace_secs = 30).await;
    let (_, first) = app.logged_in().await;
    let second = app.reissue_ok(&first.refresh).await;

    let repeat = app.reissue_ok(&first.refresh).await;

    assert_eq!(repeat.refresh, second.refresh, "the chain must not fork");
    assert_eq!(app.me(&repeat.access).await.status(), StatusCode::OK);
    // Nothing was revoked: the current token still rotates, once.
    let third = app.reissue_ok(&second.refresh).await;
    assert_eq!(app.me(&third.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn concurrent_reissues_within_the_grace_window_all_get_the_same_token() {
    let app = spawn_app_with(|s| s.sessions.reuse_grace_secs = 30).await;
    let (_, pair) = app.logged_in().await;

    let responses =
        futures_util::future::join_all((0..6).map(|_| app.reissue(&pair.refresh))).await;

    let mut refresh_tokens = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        refresh_tokens.push(Pair::from_json(response.json().await.unwrap()).refresh);
    }
    refresh_tokens.dedup();
    assert_eq!(refresh_tokens.len(), 1, "two tabs must not fork the chain");
    app.reissue_ok(&refresh_tokens[0]).await;
}

#[tokio::test]
async fn a_repeat_after_the_grace_window_is_reuse() {
    let app = spawn_app_with(|s| s.sessions.reuse_grace_secs = 1).await;
    let (_, first) = app.logged_in().await;
    let second = app.reissue_ok(&first.refresh).await;
    app.advance(Duration::from_secs(1));

    assert_unauthorized(app.reissue(&first.refresh).await, "token_reused").await;
    assert_unauthorized(app.reissue(&second.refresh).await, "session_revoked").await;
}

#[tokio::test]
async fn an_access_token_of_another_session_beside_the_refresh_token_revokes_the_session() {
    let app = spawn_app_with(|_| {}).await;
    let (_, victim) = app.logged_in().await;
    let (_, attacker) = app.logged_in().await;

    assert_unauthorized(
        app.reissue_with_access(&victim.refresh, &attacker.access)
            .await,
        "invalid_token",
    )
    .await;

    assert_unauthorized(app.reissue(&victim.refresh).await, "session_revoked").await;
    assert_unauthorized(app.me(&victim.access).await, "session_revoked").await;
}

#[tokio::test]
async fn an_access_token_not_signed_by_us_beside_the_refresh_token_revokes_the_session() {
    let app = spawn_app_with(|_| {}).await;
    let (_, pair) = app.logged_in().await;

    assert_unauthorized(
        app.reissue_with_access(&pair.refresh, "not.a.token").await,
        "invalid_token",
    )
    .await;

    assert_unauthorized(app.reissue(&pair.refresh).await, "session_revoked").await;
}

#[tokio::test]
async fn case_both_valid_gives_a_new_pair() {
    let app = spawn_app_with(|_| {}).await;
    let (_, pair) = app.logged_in().await;
    let response = app.reissue_with_access(&pair.refresh, &pair.access).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn case_access_expired_refresh_valid_gives_a_new_pair() {
    let app = spawn_app_with(|s| s.jwt.access_ttl_secs = 1).await;
    let (_, pair) = app.logged_in().await;
    app.advance(Duration::from_secs(2));
    assert_unauthorized(app.me(&pair.access).await, "token_expired").await;

    let response = app.reissue_with_access(&pair.refresh, &pair.access).await;

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn case_access_valid_refresh_expired_renews_the_session() {
    let app = spawn_app_with(|s| {
        s.jwt.access_ttl_secs = 60;
        // Long enough that the renewed token is still alive for the last
        // step however slow a loaded machine is (the clock is real between
        // the advances).
        s.jwt.refresh_ttl_secs = 10;
    })
    .await;
    let (_, pair) = app.logged_in().await;
    app.advance(Duration::from_secs(11));
    assert_unauthorized(app.reissue(&pair.refresh).await, "token_expired").await;

    let response = app.reissue_with_access(&pair.refresh, &pair.access).await;

    assert_eq!(response.status(), StatusCode::OK);
    let renewed = Pair::from_json(response.json().await.unwrap());
    assert_eq!(renewed.session_id, pair.session_id);
    app.reissue_ok(&renewed.refresh).await;
}

#[tokio::test]
async fn case_both_expired_is_401_token_expired() {
    let app = spawn_app_with(|s| {
        s.jwt.access_ttl_secs = 1;
        s.jwt.refresh_ttl_secs = 1;
    })
    .await;
    let (_, pair) = app.logged_in().await;
    app.advance(Duration::from_secs(2));

    assert_unauthorized(
        app.reissue_with_access(&pair.refresh, &pair.access).await,
        "token_expired",
    )
    .await;
}

#[tokio::test]
async fn no_renewal_past_the_session_max_lifetime() {
    let app = spawn_app_with(|s| {
        s.jwt.access_ttl_secs = 60;
        s.jwt.refresh_ttl_secs = 60;
        s.sessions.max_lifetime_secs = 2;
    })
    .await;
    let (_, pair) = app.logged_in().await;
    // Both tokens are capped at the session's end.
    assert!(pair.json["expires_in"].as_i64().unwrap() <= 2);
    assert!(pair.json["refresh_expires_in"].as_i64().unwrap() <= 2);
    app.advance(Duration::from_secs(2));

    assert_unauthorized(
        app.reissue_with_access(&pair.refresh, &pair.access).await,
        "token_expired",
    )
    .await;
}
