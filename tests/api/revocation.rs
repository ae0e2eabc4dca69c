//! SPEC 4.5: a revoked session's access tokens are refused within a second,
//! on every instance sharing the database, with no query per request.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{assert_unauthorized, spawn_app, start, Setup, TestApp};

// Across instances, on PostgreSQL and behind PgBouncer (with
// `database.listen_url`): each body runs as `<body>::direct` and
// `<body>::through_pgbouncer`.
on_both_setups!(
    a_logout_on_one_instance_is_seen_by_another_within_a_second,
    reuse_detection_on_one_instance_is_seen_by_another_within_a_second,
    an_admin_revocation_is_seen_by_another_instance_within_a_second,
);

/// Polls `/auth/me` on `app` until the token is refused; returns how long
/// that took, or panics after `limit`.
async fn time_until_refused(app: &TestApp, access: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let status = app.me(access).await.status();
        if status == StatusCode::UNAUTHORIZED {
            return start.elapsed();
        }
        assert_eq!(status, StatusCode::OK);
        assert!(start.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_logout_on_one_instance_is_seen_by_another_within_a_second(setup: Setup) {
    let one = setup.spawn().await;
    let two = start(one.settings.clone()).await;
    let (_, pair) = one.logged_in().await;
    assert_eq!(two.me(&pair.access).await.status(), StatusCode::OK);

    assert_eq!(
        one.post_with("/auth/logout", &pair.access).await.status(),
        StatusCode::NO_CONTENT
    );

    let took = time_until_refused(&two, &pair.access, Duration::from_secs(1)).await;
    assert_unauthorized(two.me(&pair.access).await, "session_revoked").await;
    println!("revocation reached the other instance in {took:?}");
}

async fn reuse_detection_on_one_instance_is_seen_by_another_within_a_second(setup: Setup) {
    let one = setup.spawn().await;
    let two = start(one.settings.clone()).await;
    let (_, first) = one.logged_in().await;
    let second = one.reissue_ok(&first.refresh).await;

    assert_unauthorized(one.reissue(&first.refresh).await, "token_reused").await;

    time_until_refused(&two, &second.access, Duration::from_secs(1)).await;
}

async fn an_admin_revocation_is_seen_by_another_instance_within_a_second(setup: Setup) {
    let one = setup.spawn().await;
    let two = start(one.settings.clone()).await;
    let (email, pair) = one.logged_in().await;
    let other = one.login_ok(&email).await;
    let user_id = crate::helpers::claims_of(&pair.access)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = one.new_user().await;
    assert!(crate::admin::authgate(&one, &["admin", "grant", &admin])
        .status
        .success());
    let admin = one.login_ok(&admin).await;

    let response = one
        .post_with(
            &format!("/admin/users/{user_id}/revoke-sessions"),
            &admin.access,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    time_until_refused(&two, &pair.access, Duration::from_secs(1)).await;
    time_until_refused(&two, &other.access, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn behind_pgbouncer_without_listen_url_a_logout_reaches_another_instance_by_the_catch_up() {
    // Notifications cannot reach a session through a transaction pooler
    // (SPEC 9): the feed's periodic catch-up brings the revocation instead,
    // within about CATCH_UP_EVERY plus the poll; 5 s is a generous bound.
    let one = Setup::PooledWithoutListenUrl.spawn().await;
    let two = start(one.settings.clone()).await;
    assert_eq!(
        two.settings.database.listen_url(),
        two.settings.database.url
    );
    let (_, pair) = one.logged_in().await;
    assert_eq!(two.me(&pair.access).await.status(), StatusCode::OK);

    assert_eq!(
        one.post_with("/auth/logout", &pair.access).await.status(),
        StatusCode::NO_CONTENT
    );

    let took = time_until_refused(&two, &pair.access, Duration::from_secs(5)).await;
    assert_unauthorized(two.me(&pair.access).await, "session_revoked").await;
    println!("revocation reached the other instance by the catch-up in {took:?}");
}

#[tokio::test]
async fn an_instance_started_after_a_revocation_refuses_the_token_at_once() {
    let one = spawn_app().await;
    let (_, pair) = one.logged_in().await;
    one.post_with("/auth/logout", &pair.access).await;

    let late = start(one.settings.clone()).await;

    assert_unauthorized(late.me(&pair.access).await, "session_revoked").await;
}

#[tokio::test]
async fn a_revocation_notified_while_the_listener_was_away_is_caught_up() {
    // A revocation written straight to the table, with no NOTIFY (as if the
    // notification were lost), is still picked up by the periodic catch-up.
    use authgate::schema::sessions::dsl::*;
    use diesel::prelude::*;
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let sid: uuid::Uuid = pair.session_id.parse().unwrap();

    diesel::update(sessions.find(sid))
        .set((
            revoked_at.eq(chrono::Utc::now()),
            revoked_reason.eq("logout"),
        ))
        .execute(&mut app.db())
        .unwrap();

    time_until_refused(&app, &pair.access, Duration::from_secs(8)).await;
}

#[tokio::test]
async fn me_is_served_without_the_database() {
    // Access-token checks need no query: /auth/me keeps answering while
    // every connection of the pool is busy elsewhere.
    let app = crate::helpers::spawn_app_with(|s| {
        s.database.pool_size = 1;
        s.database.connect_timeout_ms = 5_000;
    })
    .await;
    let (_, pair) = app.logged_in().await;
    let db_url = app.db_url.clone();
    // Hold a lock that the next login's transaction will wait on, so the
    // only pooled connection stays busy.
    let holder = std::thread::spawn(move || {
        use diesel::prelude::*;
        let mut conn = diesel::PgConnection::establish(&db_url).unwrap();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::sql_query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE").execute(conn)?;
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        })
        .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stuck = {
        let client = app.client.clone();
        let url = app.url("/auth/login");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&serde_json::json!({"email": "x@example.org", "password": "whatever1"}))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let response = app.me(&pair.access).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let _ = stuck.await;
    holder.join().unwrap();
}
