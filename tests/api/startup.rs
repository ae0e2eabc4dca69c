//! Start-up and the one-shot commands, run as the operator runs them.

use std::process::{Command, Output};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::helpers::{spawn_app, TestApp};

fn authgate_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authgate"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env_remove("AUTHGATE_ENV")
        .env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run authgate")
}

fn assert_refused_with_one_line(output: &Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line, not a backtrace: {stderr}"
    );
    assert!(stderr.contains(needle), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn start_up_refuses_a_missing_database_url() {
    let output = authgate_env(&["serve"], &[]);
    assert_refused_with_one_line(&output, "DATABASE_URL");
}

#[test]
fn start_up_refuses_an_unreachable_database() {
    let output = authgate_env(
        &["serve"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")],
    );
    assert_refused_with_one_line(&output, "database");
}

#[test]
fn start_up_refuses_a_secret_under_32_bytes() {
    let output = authgate_env(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
            ("AUTHGATE__JWT__SECRET", "too-short"),
        ],
    );
    assert_refused_with_one_line(&output, "32 bytes");
}

#[test]
fn start_up_refuses_the_development_secret_in_production() {
    let output = authgate_env(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
            ("AUTHGATE_ENV", "production"),
        ],
    );
    assert_refused_with_one_line(&output, "development");
}

#[tokio::test]
async fn migrate_is_idempotent_and_reports_on_stdout() {
    let app = spawn_app().await;
    let output = authgate_env(&["migrate"], &[("DATABASE_URL", &app.db_url)]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "migrations applied=0"
    );
}

#[tokio::test]
async fn authgate_database_url_overrides_database_url() {
    let app = spawn_app().await;
    let output = authgate_env(
        &["migrate"],
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
            ("AUTHGATE__DATABASE__URL", &app.db_url),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[derive(QueryableByName)]
struct Undocumented {
    #[diesel(sql_type = Text)]
    what: String,
}

#[tokio::test]
async fn every_table_and_column_has_a_comment_for_dbas() {
    let app: TestApp = spawn_app().await;
    let missing: Vec<Undocumented> = diesel::sql_query(
        "SELECT c.relname || coalesce('.' || a.attname, '') AS what
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          WHERE c.relkind IN ('r', 'v', 'p') AND c.relname NOT LIKE '\\_\\_diesel%'
            AND obj_description(c.oid, 'pg_class') IS NULL
             OR (a.attnum IS NOT NULL AND c.relkind IN ('r', 'v', 'p') AND n.nspname = 'public'
                 AND c.relname NOT LIKE '\\_\\_diesel%' AND col_description(c.oid, a.attnum) IS NULL)",
    )
    .load(&mut app.db())
    .unwrap();
    let missing: Vec<String> = missing.into_iter().map(|m| m.what).collect();
    assert!(missing.is_empty(), "no COMMENT ON for: {missing:?}");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The hash leads the unique index (SPEC 4.2); the partition key follows,
/// since a partitioned table's unique keys must include it.
#[tokio::test]
async fn reissue_finds_the_row_through_the_unique_hash_index() {
    let app = spawn_app().await;
    let mut conn = app.db();
    let unique: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_indexes
          WHERE tablename = 'refresh_tokens' AND indexdef LIKE 'CREATE UNIQUE INDEX % (token_hash, expires_at)'",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(unique.n, 1);
}

/// Runs `authgate serve` on a fresh database with RUST_LOG=info until it
/// logs that it listens, and returns what it wrote to stderr by then.
async fn stderr_until_listening(extra_env: &[(&str, &str)]) -> String {
    use std::io::{BufRead, BufReader};
    let app = spawn_app().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_authgate"));
    command
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AUTHGATE_ENV")
        .env("DATABASE_URL", &app.db_url)
        .env("AUTHGATE__SERVER__BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run authgate serve");
    let stderr = child.stderr.take().unwrap();
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("listening on") {
                break;
            }
        }
        seen
    });
    let seen = tokio::time::timeout(std::time::Duration::from_secs(20), seen).await;
    let _ = child.kill();
    let _ = child.wait();
    seen.expect("authgate serve logged that it listens")
        .unwrap()
}

#[tokio::test]
async fn the_development_secret_outside_production_gives_a_loud_warning() {
    let stderr = stderr_until_listening(&[]).await;
    assert!(
        stderr.contains("WARN") && stderr.contains("PUBLIC development default"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_real_secret_gives_no_such_warning() {
    let stderr = stderr_until_listening(&[(
        "AUTHGATE__JWT__SECRET",
        "a-real-secret-of-at-least-32-bytes!!",
    )])
    .await;
    assert!(!stderr.contains("development default"), "{stderr}");
}
