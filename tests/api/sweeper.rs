//! SPEC 5: what a pass removes and keeps, batching, the advisory lock, the
//! CLI's output and exit codes, and /metrics. Rows are aged by moving their
//! timestamps into the past, so nothing here sleeps.

use std::process::Command;

use authgate::config::SweeperSettings;
use authgate::sweeper::{run_pass, PassOutcome, SweepReport, LOCK_KEY};
use diesel::prelude::*;
use reqwest::StatusCode;

use crate::helpers::{assert_unauthorized, spawn_app, TestApp};

pub fn settings(batch_size: u32, retention_secs: u64) -> SweeperSettings {
    SweeperSettings {
        schedule: "0 0 0 1 1 *".into(),
        batch_size,
        revoked_retention_secs: retention_secs,
        batch_pause_ms: 1,
    }
}

pub fn pass(app: &TestApp, settings: &SweeperSettings) -> SweepReport {
    match run_pass(
        &mut app.db(),
        &mut app.db(),
        settings,
        access_ttl(app),
        false,
    )
    .unwrap()
    {
        PassOutcome::Done(report) => report,
        PassOutcome::Skipped => panic!("the pass was skipped"),
    }
}

pub fn access_ttl(app: &TestApp) -> authgate::sweeper::Lifetimes {
    authgate::sweeper::Lifetimes::of(&app.settings)
}

/// Moves the session (its login, last use and end) and its refresh tokens
/// `secs` seconds into the past, as if they had been issued that long ago.
/// The partitions those rows would have been in are made first, as they
/// would have been made ahead back then.
pub fn age_tokens(app: &TestApp, session: &str, secs: i64) {
    let mut conn = app.db();
    let now = chrono::Utc::now();
    authgate::partitions::make(
        &mut conn,
        now - chrono::Duration::seconds(secs),
        now + chrono::Duration::days(1),
    )
    .unwrap();
    for sql in [
        "UPDATE refresh_tokens
            SET issued_at = issued_at - make_interval(secs => $2),
                expires_at = expires_at - make_interval(secs => $2),
                spent_at = spent_at - make_interval(secs => $2)
          WHERE session_id = $1::uuid",
        "UPDATE sessions
            SET created_at = created_at - make_interval(secs => $2),
                last_used_at = last_used_at - make_interval(secs => $2),
                expires_at = expires_at - make_interval(secs => $2)
          WHERE id = $1::uuid",
    ] {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(session)
            .bind::<diesel::sql_types::Double, _>(secs as f64)
            .execute(&mut conn)
            .unwrap();
    }
}

/// Moves the session's revocation `secs` seconds into the past.
pub fn age_revocation(app: &TestApp, session: &str, secs: i64) {
    let mut conn = app.db();
    for sql in [
        "UPDATE refresh_tokens SET revoked_at = revoked_at - make_interval(secs => $2)
          WHERE session_id = $1::uuid",
        "UPDATE sessions SET revoked_at = revoked_at - make_interval(secs => $2)
          WHERE id = $1::uuid",
    ] {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(session)
            .bind::<diesel::sql_types::Double, _>(secs as f64)
            .execute(&mut conn)
            .unwrap();
    }
}

pub fn count(app: &TestApp, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(&mut app.db())
        .unwrap()
        .n
}

const TWO_WEEKS: i64 = 15 * 24 * 3600;

#[tokio::test]
async fn a_pass_deletes_expired_rows_and_the_sessions_they_leave_empty() {
    let app = spawn_app().await;
    let (_, old) = app.logged_in().await;
    let (_, live) = app.logged_in().await;
    age_tokens(&app, &old.session_id, TWO_WEEKS);

    let report = pass(&app, &settings(100, 3600));

    assert_eq!((report.expired, report.revoked, report.sessions), (1, 0, 1));
    assert_eq!(count(&app, "SELECT count(*) AS n FROM refresh_tokens"), 1);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM sessions"), 1);
    app.reissue_ok(&live.refresh).await;
}

#[tokio::test]
async fn a_spent_row_stays_until_it_expires_so_reuse_is_still_detected_after_a_sweep() {
    let app = spawn_app().await;
    let (_, first) = app.logged_in().await;
    let second = app.reissue_ok(&first.refresh).await;

    let report = pass(&app, &settings(100, 0));

    assert_eq!((report.expired, report.revoked, report.sessions), (0, 0, 0));
    assert_unauthorized(app.reissue(&first.refresh).await, "token_reused").await;
    assert_unauthorized(app.reissue(&second.refresh).await, "session_revoked").await;
}

#[tokio::test]
async fn revoked_rows_stay_for_the_retention_and_then_go() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    app.reissue_ok(&pair.refresh).await;
    let (_, ended) = app.logged_in().await;
    app.post_with("/auth/logout", &ended.access).await;

    let within = pass(&app, &settings(100, 3600));
    assert_eq!((within.expired, within.revoked, within.sessions), (0, 0, 0));

    age_revocation(&app, &ended.session_id, 7200);
    let after = pass(&app, &settings(100, 3600));

    assert_eq!((after.expired, after.revoked, after.sessions), (0, 1, 1));
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM sessions WHERE id = '{}'",
                ended.session_id
            )
        ),
        0
    );
    // The live session and its two rows (one spent) are untouched.
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM refresh_tokens WHERE session_id = '{}'",
                pair.session_id
            )
        ),
        2
    );
}

#[tokio::test]
async fn deletes_go_in_batches_until_nothing_is_left() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let mut refresh = pair.refresh.clone();
    for _ in 0..4 {
        refresh = app.reissue_ok(&refresh).await.refresh;
    }
    age_tokens(&app, &pair.session_id, TWO_WEEKS);

    let report = pass(&app, &settings(2, 3600));

    assert_eq!((report.expired, report.sessions), (5, 1));
    assert_eq!(count(&app, "SELECT count(*) AS n FROM refresh_tokens"), 0);
}

#[tokio::test]
async fn a_dry_run_counts_and_deletes_nothing() {
    let app = spawn_app().await;
    let (_, old) = app.logged_in().await;
    app.logged_in().await;
    age_tokens(&app, &old.session_id, TWO_WEEKS);

    let outcome = run_pass(
        &mut app.db(),
        &mut app.db(),
        &settings(100, 3600),
        access_ttl(&app),
        true,
    )
    .unwrap();

    let PassOutcome::Done(report) = outcome else {
        panic!("skipped")
    };
    assert_eq!((report.expired, report.revoked, report.sessions), (1, 0, 1));
    assert_eq!(count(&app, "SELECT count(*) AS n FROM refresh_tokens"), 2);
}

#[tokio::test]
async fn a_second_concurrent_pass_skips() {
    let app = spawn_app().await;
    let mut holder = app.db();
    diesel::sql_query(format!("SELECT pg_advisory_lock({LOCK_KEY})"))
        .execute(&mut holder)
        .unwrap();

    let outcome = run_pass(
        &mut app.db(),
        &mut app.db(),
        &settings(100, 3600),
        access_ttl(&app),
        false,
    )
    .unwrap();

    assert_eq!(outcome, PassOutcome::Skipped);
    diesel::sql_query(format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
        .execute(&mut holder)
        .unwrap();
    assert!(matches!(
        run_pass(
            &mut app.db(),
            &mut app.db(),
            &settings(100, 3600),
            access_ttl(&app),
            false
        )
        .unwrap(),
        PassOutcome::Done(_)
    ));
}

fn sweep_cli(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("sweep")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AUTHGATE__DATABASE__URL")
        .env("DATABASE_URL", db_url)
        .env("AUTHGATE_ENV", "test")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run authgate sweep")
}

fn one_line(output: &std::process::Output) -> String {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout:?}");
    stdout.trim_end().to_owned()
}

#[tokio::test]
async fn authgate_sweep_prints_one_line_and_exits_0() {
    let app = spawn_app().await;
    let (_, old) = app.logged_in().await;
    age_tokens(&app, &old.session_id, TWO_WEEKS);

    let output = sweep_cli(&app.db_url, &[]);

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = one_line(&output);
    let (counts, took) = line.split_once(" took=").unwrap();
    assert_eq!(counts, "expired=1 revoked=0 sessions=1");
    assert!(
        took.strip_suffix("ms").unwrap().parse::<u64>().is_ok(),
        "{line}"
    );
}

#[tokio::test]
async fn authgate_sweep_dry_run_says_so_and_deletes_nothing() {
    let app = spawn_app().await;
    let (_, old) = app.logged_in().await;
    age_tokens(&app, &old.session_id, TWO_WEEKS);

    let output = sweep_cli(&app.db_url, &["--dry-run"]);

    assert!(output.status.success());
    assert!(one_line(&output).starts_with("dry-run expired=1 revoked=0 sessions=1 took="));
    assert_eq!(count(&app, "SELECT count(*) AS n FROM refresh_tokens"), 1);
}

#[tokio::test]
async fn authgate_sweep_beside_a_running_pass_prints_skipped_and_exits_0() {
    let app = spawn_app().await;
    let mut holder = app.db();
    diesel::sql_query(format!("SELECT pg_advisory_lock({LOCK_KEY})"))
        .execute(&mut holder)
        .unwrap();

    let output = sweep_cli(&app.db_url, &[]);

    assert!(output.status.success());
    assert!(one_line(&output).contains("skipped"));
}

#[test]
fn authgate_sweep_without_a_database_exits_1_with_a_message_on_stderr() {
    let output = sweep_cli("postgres://postgres@127.0.0.1:1/nothing", &[]);

    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn the_schedule_runs_passes_inside_serve_and_metrics_count_them() {
    let app = crate::helpers::spawn_app_with(|s| s.sweeper.schedule = "* * * * * *".into()).await;
    let (_, old) = app.logged_in().await;
    age_tokens(&app, &old.session_id, TWO_WEEKS);

    let started = std::time::Instant::now();
    let text = loop {
        let text = app.get("/metrics").await.text().await.unwrap();
        if text.contains("authgate_sweeper_rows_swept_total{reason=\"expired\"} 1") {
            break text;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no pass swept the row:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        text.contains("authgate_sweeper_sessions_swept_total 1"),
        "{text}"
    );
    assert!(
        !text.contains("authgate_sweeper_passes_total{outcome=\"done\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("authgate_sweeper_last_pass_duration_seconds "),
        "{text}"
    );
    assert!(
        !text.contains("authgate_sweeper_last_pass_timestamp_seconds 0\n"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_show_refresh_tokens_by_state() {
    let app = spawn_app().await;
    let (_, live) = app.logged_in().await;
    app.reissue_ok(&live.refresh).await;
    let (_, ended) = app.logged_in().await;
    app.post_with("/auth/logout", &ended.access).await;
    let (_, old) = app.logged_in().await;
    age_tokens(&app, &old.session_id, TWO_WEEKS);

    let response = app.get("/metrics").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains("authgate_refresh_tokens{state=\"live\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("authgate_refresh_tokens{state=\"expired\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("authgate_refresh_tokens{state=\"revoked\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn the_active_sessions_view_shows_live_sessions_with_the_users_email() {
    let app = spawn_app().await;
    let (email, live) = app.logged_in().await;
    let (_, ended) = app.logged_in().await;
    app.post_with("/auth/logout", &ended.access).await;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        email: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        session_id: String,
    }
    let rows: Vec<Row> =
        diesel::sql_query("SELECT email, session_id::text AS session_id FROM active_sessions")
            .load(&mut app.db())
            .unwrap();

    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].email.as_str(), rows[0].session_id.as_str()),
        (email.as_str(), live.session_id.as_str())
    );
}
