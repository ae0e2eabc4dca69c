//! SPEC 6: with PostgreSQL gone, requests that need it get 503 within 2
//! seconds, the server stays up, and it recovers by itself.

use std::path::Path;
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

/// The PostgreSQL that scripts/test.sh starts for this file alone, so that
/// freezing it stops no other test.
fn freezable_cluster() -> (String, String) {
    let url = std::env::var("AUTHGATE_TEST_FREEZABLE_URL")
        .expect("AUTHGATE_TEST_FREEZABLE_URL is unset: run the tests through scripts/test.sh");
    let data = std::env::var("AUTHGATE_TEST_FREEZABLE_DATA")
        .expect("AUTHGATE_TEST_FREEZABLE_DATA is unset: run the tests through scripts/test.sh");
    (url, data)
}

/// Every process of the cluster: the postmaster (first line of
/// postmaster.pid) and its children.
fn cluster_pids(data: &str) -> Vec<String> {
    let pidfile = std::fs::read_to_string(format!("{data}/postmaster.pid")).unwrap();
    let postmaster = pidfile.lines().next().unwrap().trim().to_owned();
    let mut pids = vec![postmaster.clone()];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces, so split after ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).unwrap_or("");
        if ppid == postmaster {
            pids.push(head.split_whitespace().next().unwrap().to_owned());
        }
    }
    pids
}

/// Sends `signal` to each of `pids`. A backend that exited since it was
/// listed (its client went away, an autovacuum worker finished) has nothing
/// left to freeze or thaw; any other failure fails the test.
fn signal(pids: &[String], signal: &str) {
    for pid in pids {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        let gone = !Path::new("/proc").join(pid).exists();
        assert!(status.success() || gone, "kill -{signal} {pid}");
    }
}

/// Freezes the cluster (SIGSTOP: connections stay open, the kernel still
/// accepts and acknowledges, nothing answers) until dropped, even when the
/// test panics.
struct Frozen(Vec<String>);

impl Frozen {
    fn cluster(data: &str) -> Frozen {
        let pids = cluster_pids(data);
        signal(&pids, "STOP");
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(&self.0, "CONT");
    }
}

/// Asserts that every request got 503 `unavailable` within 2 seconds.
async fn assert_all_unavailable_within_2_seconds(
    app: &TestApp,
    requests: Vec<reqwest::RequestBuilder>,
) {
    let timed = requests.into_iter().map(|request| async move {
        let started = Instant::now();
        let response = request
            .send()
            .await
            .expect("an answer, not a dropped connection");
        (started.elapsed(), response)
    });
    for (took, response) in futures_util::future::join_all(timed).await {
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    // What needs no database keeps working.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

async fn wait_until_ready(app: &TestApp, limit: Duration) {
    let started = Instant::now();
    while app.get("/readyz").await.status() != StatusCode::OK {
        assert!(started.elapsed() < limit, "not ready again after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_postgresql_gives_503_within_2_seconds_and_the_server_recovers_after_it_thaws() {
    let (url, data) = freezable_cluster();
    let app = crate::helpers::spawn_app_on(url, |_| {}).await;
    let (email, pair) = app.logged_in().await;

    let frozen = Frozen::cluster(&data);
    let new_email = format!("new-{email}");
    assert_all_unavailable_within_2_seconds(
        &app,
        vec![
            app.client.get(app.url("/readyz")),
            app.client
                .post(app.url("/auth/login"))
                .json(&serde_json::json!({"email": email, "password": PASSWORD})),
            app.client
                .post(app.url("/auth/signup"))
                .json(&serde_json::json!({"email": new_email, "password": PASSWORD})),
            app.client
                .post(app.url("/auth/reissue"))
                .json(&serde_json::json!({"refresh_token": pair.refresh})),
        ],
    )
    .await;
    // A second wave, while the first one's threads are still stuck on
    // their sockets: the pool is not leaked away, answers still come in time.
    assert_all_unavailable_within_2_seconds(
        &app,
        vec![
            app.client.get(app.url("/readyz")),
            app.client
                .post(app.url("/auth/reissue"))
                .json(&serde_json::json!({"refresh_token": pair.refresh})),
        ],
    )
    .await;
    assert_eq!(app.me(&pair.access).await.status(), StatusCode::OK);
    drop(frozen);

    wait_until_ready(&app, Duration::from_secs(15)).await;
    // The reissue that timed out rolled back: the token is still current.
    app.reissue_ok(&pair.refresh).await;
    app.login_ok(&email).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_locked_by_someone_else_gives_503_within_2_seconds() {
    let app = spawn_app().await;
    let (email, pair) = app.logged_in().await;
    let db_url = app.db_url.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    // A migration, say, holding an exclusive lock on `sessions`.
    let holder = std::thread::spawn(move || {
        let mut conn = diesel::PgConnection::establish(&db_url).unwrap();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::sql_query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE").execute(conn)?;
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(30));
            Ok(())
        })
        .unwrap();
    });
    locked_rx.recv().unwrap();

    assert_all_unavailable_within_2_seconds(
        &app,
        vec![
            app.client
                .post(app.url("/auth/login"))
                .json(&serde_json::json!({"email": email, "password": PASSWORD})),
            app.client
                .post(app.url("/auth/reissue"))
                .json(&serde_json::json!({"refresh_token": pair.refresh})),
            app.client
                .post(app.url("/auth/logout"))
                .bearer_auth(&pair.access),
        ],
    )
    .await;

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    app.reissue_ok(&pair.refresh).await;
}
