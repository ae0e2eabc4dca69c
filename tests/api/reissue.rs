use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_bare_challenge, assert_error, assert_unauthorized, claims_of, spawn_app, spawn_app_with,
    start, Pair, Setup,
};

// Rotation races across instances, on PostgreSQL and behind PgBouncer.
on_both_setups!(
    concurrent_reissues_of_one_token_on_two_instances_let_exactly_one_succeed,
    concurrent_reissues_on_two_instances_within_the_grace_all_get_the_same_token,
);

#[tokio::test]
async fn reissue_rotates_the_refresh_token_and_returns_a_new_pair() {
    let app = spawn_app().await;
    let (_, first) = app.logged_in().await;

    let second = app.reissue_ok(&first.refresh).await;

    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(second.json["token_type"], "Bearer");
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);
    // The new refresh token works in turn.
    app.reissue_ok(&second.refresh).await;
}

#[tokio::test]
async fn reissue_accepts_the_refresh_token_as_a_bearer_header_with_no_body() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;

    let response = app.post_with("/auth/reissue", &pair.refresh).await;

    assert_eq!(response.status(), StatusCode::OK);
    let next = Pair::from_json(response.json().await.unwrap());
    assert_ne!(next.refresh, pair.refresh);
}

#[tokio::test]
async fn reissue_returns_401_token_reused_when_a_spent_token_comes_back_and_revokes_the_session() {
    let app = spawn_app().await;
    let (_, first) = app.logged_in().await;
    let second = app.reissue_ok(&first.refresh).await;

    assert_unauthorized(app.reissue(&first.refresh).await, "token_reused").await;

    // The whole family is dead: the newest refresh token and its access token.
    assert_unauthorized(app.reissue(&second.refresh).await, "session_revoked").await;
    assert_unauthorized(app.me(&second.access).await, "session_revoked").await;
    assert_unauthorized(app.me(&first.access).await, "session_revoked").await;
}

#[tokio::test]
async fn reuse_leaves_the_users_other_sessions_alone() {
    let app = spawn_app().await;
    let (email, first) = app.logged_in().await;
    let other = app.login_ok(&email).await;
    app.reissue_ok(&first.refresh).await;

    assert_unauthorized(app.reissue(&first.refresh).await, "token_reused").await;

    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);
    app.reissue_ok(&other.refresh).await;
}

#[tokio::test]
async fn reissue_refuses_an_access_token_as_refresh_token() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    assert_unauthorized(app.reissue(&pair.access).await, "invalid_token").await;
    assert_unauthorized(
        app.post_with("/auth/reissue", &pair.access).await,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn reissue_refuses_garbage_and_forged_tokens() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let mut forged: authgate::tokens::Claims =
        serde_json::from_value(claims_of(&pair.refresh)).unwrap();
    forged.jti = uuid::Uuid::new_v4().to_string();
    let other_key = authgate::tokens::TokenKeys::new(
        &authgate::tokens::SecretKey::new("some-other-secret-key-0123456789abcdef"),
        "authgate",
        "authgate-clients",
    );
    for token in [
        "",
        "garbage",
        "a.b.c",
        &other_key.sign(&forged),
        &"x".repeat(10_000),
    ] {
        assert_unauthorized(app.reissue(token).await, "invalid_token").await;
    }
    // The real one still works: nothing above touched the session.
    app.reissue_ok(&pair.refresh).await;
}

#[tokio::test]
async fn reissue_without_any_token_is_401() {
    let app = spawn_app().await;
    let response = app.post("/auth/reissue").await;
    assert_bare_challenge(response).await;
}

#[tokio::test]
async fn reissue_returns_400_for_a_body_without_refresh_token() {
    let app = spawn_app().await;
    for body in [json!({}), json!({ "refresh_token": 7 }), json!([1])] {
        let response = app.post_json("/auth/reissue", &body).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn reissue_after_logout_is_401_session_revoked() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    assert_eq!(
        app.post_with("/auth/logout", &pair.access).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_unauthorized(app.reissue(&pair.refresh).await, "session_revoked").await;
}

#[tokio::test]
async fn reissue_of_an_expired_refresh_token_without_access_token_is_401_token_expired() {
    let app = spawn_app_with(|s| s.jwt.refresh_ttl_secs = 1).await;
    let (_, pair) = app.logged_in().await;
    app.advance(Duration::from_secs(1));

    assert_unauthorized(app.reissue(&pair.refresh).await, "token_expired").await;
}

#[tokio::test]
async fn the_refresh_token_row_holds_the_sha256_of_the_token_never_the_token() {
    use authgate::schema::refresh_tokens::dsl::*;
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;

    let hashes: Vec<Vec<u8>> = refresh_tokens
        .select(token_hash)
        .load(&mut app.db())
        .unwrap();

    assert_eq!(
        hashes,
        vec![authgate::tokens::TokenHash::of(&pair.refresh)
            .as_bytes()
            .to_vec()]
    );
}

#[tokio::test]
async fn concurrent_reissues_of_one_token_without_grace_let_exactly_one_succeed() {
    let app = spawn_app_with(|s| s.sessions.reuse_grace_secs = 0).await;
    let (_, pair) = app.logged_in().await;

    let attempts = (0..8).map(|_| app.reissue(&pair.refresh));
    let responses = futures_util::future::join_all(attempts).await;

    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED));
}

async fn concurrent_reissues_of_one_token_on_two_instances_let_exactly_one_succeed(setup: Setup) {
    let one = setup.spawn_with(|s| s.sessions.reuse_grace_secs = 0).await;
    let two = start(one.settings.clone()).await;
    let (_, pair) = one.logged_in().await;

    let attempts = (0..16).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        app.reissue(&pair.refresh)
    });
    let responses = futures_util::future::join_all(attempts).await;

    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    // The losers were reuse: the session is revoked on both instances.
    assert_unauthorized(two.reissue(&pair.refresh).await, "session_revoked").await;
}

async fn concurrent_reissues_on_two_instances_within_the_grace_all_get_the_same_token(
    setup: Setup,
) {
    let one = setup.spawn_with(|s| s.sessions.reuse_grace_secs = 30).await;
    let two = start(one.settings.clone()).await;
    let (_, pair) = one.logged_in().await;

    let attempts = (0..16).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        app.reissue(&pair.refresh)
    });
    let responses = futures_util::future::join_all(attempts).await;

    let mut tokens = std::collections::HashSet::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        let pair = Pair::from_json(response.json().await.unwrap());
        tokens.insert(pair.refresh);
    }
    assert_eq!(tokens.len(), 1, "the chain forked: {tokens:?}");
    let next = tokens.into_iter().next().unwrap();
    two.reissue_ok(&next).await;
}
