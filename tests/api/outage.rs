//! SPEC 6: with PostgreSQL gone, requests that need it get 503 within 2
//! seconds, the server stays up, and it recovers by itself.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app, TestApp, PASSWORD};

/// Makes the test's database unreachable: renames it (new connections fail)
/// and ends every connection to it. Returns a closure that undoes it.
fn take_database_away(app: &TestApp) -> impl FnOnce() {
    let base = std::env::var("DATABASE_URL").unwrap();
    let name = app.db_url.rsplit_once('/').unwrap().1.to_owned();
    let hidden = format!("{name}_away");
    let mut admin = diesel::PgConnection::establish(&base).unwrap();
    // Refuse new connections first, then end the existing ones.
    diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .unwrap();
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .execute(&mut admin)
    .unwrap();
    diesel::sql_query(format!("ALTER DATABASE {name} RENAME TO {hidden}"))
        .execute(&mut admin)
        .unwrap();
    move || {
        diesel::sql_query(format!("ALTER DATABASE {hidden} RENAME TO {name}"))
            .execute(&mut admin)
            .unwrap();
        diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .execute(&mut admin)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_postgresql_requests_get_503_within_2_seconds_and_recover() {
    let app = spawn_app().await;
    let (email, pair) = app.logged_in().await;

    let bring_back = tokio::task::block_in_place(|| take_database_away(&app));

    for request in [
        app.client.get(app.url("/readyz")),
        app.client
            .post(app.url("/auth/login"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD})),
        app.client
            .post(app.url("/auth/reissue"))
            .json(&serde_json::json!({"refresh_token": pair.refresh})),
    ] {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    // What needs no database keeps working.
    assert_eq!(app.me(&pair.access).await.status(), StatusCode::OK);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    tokio::task::block_in_place(bring_back);

    let started = Instant::now();
    loop {
        let status = app.get("/readyz").await.status();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.reissue_ok(&pair.refresh).await;
}
