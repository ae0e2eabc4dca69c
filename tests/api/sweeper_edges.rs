//! SPEC 5's edges: the sweeper never removes what a live access token still
//! needs, and a logout still reaches every instance when the session is gone.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::helpers::{assert_unauthorized, spawn_app_with, start, Pair};
use crate::sweeper::{age_revocation, age_tokens, count, pass, settings};

/// An access lifetime above the refresh lifetime: the renewal case of 4.3.
fn renewable(s: &mut authgate::config::Settings) {
    s.jwt.access_ttl_secs = 3600;
    s.jwt.refresh_ttl_secs = 60;
}

#[tokio::test]
async fn a_sweep_keeps_the_expired_current_row_that_a_live_access_token_can_still_renew() {
    let app = spawn_app_with(renewable).await;
    let (_, pair) = app.logged_in().await;
    // The refresh token expired a minute ago; the access token lives on.
    age_tokens(&app, &pair.session_id, 120);
    app.advance(Duration::from_secs(120));

    let report = pass(&app, &settings(100, 3600));

    assert_eq!((report.expired, report.sessions), (0, 0));
    let response = app.reissue_with_access(&pair.refresh, &pair.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let renewed = Pair::from_json(response.json().await.unwrap());
    assert_eq!(renewed.session_id, pair.session_id);
}

#[tokio::test]
async fn a_logout_after_a_sweep_still_ends_the_session_on_every_instance() {
    let app = spawn_app_with(renewable).await;
    let (_, pair) = app.logged_in().await;
    age_tokens(&app, &pair.session_id, 120);
    app.advance(Duration::from_secs(120));
    pass(&app, &settings(100, 3600));

    let response = app.post_with("/auth/logout", &pair.access).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_unauthorized(app.me(&pair.access).await, "session_revoked").await;
    let fresh = start(app.settings.clone()).await;
    assert_unauthorized(fresh.me(&pair.access).await, "session_revoked").await;
}

#[tokio::test]
async fn once_no_access_token_can_be_alive_the_expired_row_and_its_session_go() {
    let app = spawn_app_with(renewable).await;
    let (_, pair) = app.logged_in().await;
    age_tokens(&app, &pair.session_id, 3700);

    let report = pass(&app, &settings(100, 3600));

    assert_eq!((report.expired, report.sessions), (1, 1));
}

#[tokio::test]
async fn a_short_retention_keeps_a_revoked_session_for_one_access_lifetime() {
    let app = spawn_app_with(|_| {}).await;
    let (_, pair) = app.logged_in().await;
    app.post_with("/auth/logout", &pair.access).await;

    let report = pass(&app, &settings(100, 0));

    assert_eq!((report.revoked, report.sessions), (0, 0));
    let fresh = start(app.settings.clone()).await;
    assert_unauthorized(fresh.me(&pair.access).await, "session_revoked").await;
}

#[tokio::test]
async fn a_revoked_session_goes_one_access_lifetime_after_its_revocation_whatever_the_retention() {
    let app = spawn_app_with(|_| {}).await;
    let (_, pair) = app.logged_in().await;
    app.post_with("/auth/logout", &pair.access).await;
    let access_ttl = app.settings.jwt.access_ttl_secs as i64;
    age_revocation(&app, &pair.session_id, access_ttl + 1);

    let report = pass(&app, &settings(100, 0));

    assert_eq!((report.revoked, report.sessions), (1, 1));
}

#[tokio::test]
async fn a_logout_of_a_session_that_is_gone_still_reaches_every_instance() {
    let app = spawn_app_with(|_| {}).await;
    let (_, pair) = app.logged_in().await;
    diesel::sql_query("DELETE FROM sessions WHERE id = $1::uuid")
        .bind::<diesel::sql_types::Text, _>(&pair.session_id)
        .execute(&mut app.db())
        .unwrap();

    let response = app.post_with("/auth/logout", &pair.access).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_unauthorized(app.me(&pair.access).await, "session_revoked").await;
    let fresh = start(app.settings.clone()).await;
    assert_unauthorized(fresh.me(&pair.access).await, "session_revoked").await;
    // The tombstone goes once the token it stands for has expired.
    let tombstones = format!(
        "SELECT count(*) AS n FROM sessions WHERE id = '{}' AND revoked_reason = 'logout'",
        pair.session_id
    );
    assert_eq!(count(&app, &tombstones), 1);
}

#[tokio::test]
async fn a_pass_purges_login_failures_that_left_the_window() {
    let app = spawn_app_with(|_| {}).await;
    let email = app.new_user().await;
    app.login(&email, "a wrong password").await;
    app.login(&email, "another wrong one").await;
    let failures = "SELECT count(*) AS n FROM login_failures";
    assert!(count(&app, failures) > 0);
    diesel::sql_query("UPDATE login_failures SET at = at - make_interval(secs => $1)")
        .bind::<diesel::sql_types::Double, _>(app.settings.ratelimit.window_secs as f64 + 1.0)
        .execute(&mut app.db())
        .unwrap();

    pass(&app, &settings(100, 3600));

    assert_eq!(count(&app, failures), 0);
}
