//! Reissue in one round trip (the common case), and its fall-backs to the
//! full transaction whenever some precondition of a plain rotation fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use authgate::sessions::{rotate_in_one_statement, TokenIssuer, TokenPair};
use authgate::tokens::{TokenHash, TokenKind};
use diesel::connection::InstrumentationEvent;
use diesel::prelude::*;
use reqwest::StatusCode;

use crate::helpers::{assert_unauthorized, spawn_app, spawn_app_with, Pair, TestApp};

/// Runs the one-statement rotation on a connection of the test's own, and
/// counts the statements it sent.
fn rotate_directly(app: &TestApp, refresh: &str) -> (Option<TokenPair>, usize) {
    let issuer = TokenIssuer::new(&app.settings.jwt, app.settings.session_policy());
    let token = issuer.keys().verify(refresh, TokenKind::Refresh).unwrap();
    let mut conn = app.db();
    let statements = Arc::new(AtomicUsize::new(0));
    let counter = statements.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if matches!(event, InstrumentationEvent::StartQuery { .. }) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let rotated = rotate_in_one_statement(
        &mut conn,
        &issuer,
        &token,
        &TokenHash::of(refresh),
        app.clock.now(),
    )
    .unwrap();
    (rotated, statements.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_current_token_rotates_in_one_statement_and_the_chain_goes_on() {
    let app = spawn_app().await;
    let (_, first) = app.logged_in().await;

    let (rotated, statements) =
        tokio::task::block_in_place(|| rotate_directly(&app, &first.refresh));

    assert_eq!(statements, 1, "one round trip, commit included");
    let second = rotated.expect("the common case rotates");
    let second = Pair::from_json(serde_json::to_value(second).unwrap());
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);
    app.reissue_ok(&second.refresh).await;
    assert_unauthorized(app.reissue(&first.refresh).await, "token_reused").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_token_is_left_to_the_full_path() {
    let app = spawn_app().await;
    let (_, first) = app.logged_in().await;
    app.reissue_ok(&first.refresh).await;

    let (rotated, _) = tokio::task::block_in_place(|| rotate_directly(&app, &first.refresh));

    assert!(rotated.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_roles_are_left_to_the_full_path_which_picks_them_up() {
    let app = spawn_app().await;
    let (email, first) = app.logged_in().await;
    diesel::sql_query("UPDATE users SET roles = '{admin}' WHERE email = $1")
        .bind::<diesel::sql_types::Text, _>(&email)
        .execute(&mut app.db())
        .unwrap();

    let (rotated, _) = tokio::task::block_in_place(|| rotate_directly(&app, &first.refresh));
    assert!(rotated.is_none());

    let second = app.reissue_ok(&first.refresh).await;
    assert_eq!(
        crate::helpers::claims_of(&second.access)["roles"][0],
        "admin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_ending_before_the_new_token_would_is_left_to_the_full_path() {
    let app = spawn_app_with(|s| s.sessions.max_lifetime_secs = 60).await;
    let (_, first) = app.logged_in().await;

    let (rotated, _) = tokio::task::block_in_place(|| rotate_directly(&app, &first.refresh));
    assert!(rotated.is_none());

    // The full path caps the new tokens at the session's end.
    let second = app.reissue_ok(&first.refresh).await;
    assert!(second.json["refresh_expires_in"].as_i64().unwrap() <= 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_session_is_left_to_the_full_path() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    app.post_with("/auth/logout", &pair.access).await;

    let (rotated, _) = tokio::task::block_in_place(|| rotate_directly(&app, &pair.refresh));

    assert!(rotated.is_none());
    assert_unauthorized(app.reissue(&pair.refresh).await, "session_revoked").await;
}
