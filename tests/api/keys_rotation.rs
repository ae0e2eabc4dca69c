//! Signing keys over time (SPEC 7.1): the scheduled rotation made once
//! however many instances check, the grace-window repeat in EdDSA mode
//! (across a key change too), and the refusals of the command line.

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use authgate::config::SigningAlgorithm;
use authgate::signing_keys::{KeyMaker, KeySchedule, Sealer, StoredKey};
use diesel::{Connection, PgConnection};
use reqwest::StatusCode;

use crate::helpers::{base64url_decode, spawn_app_with, start_with_clock, TestApp};
use crate::keys::authgate_keys;

fn kid_of(token: &str) -> String {
    let head = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(&base64url_decode(head)).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn key_count(app: &TestApp) -> usize {
    StoredKey::all(&mut app.db()).unwrap().len()
}

async fn eddsa_app(rotation: u64, ahead: u64, grace: u64) -> TestApp {
    spawn_app_with(move |s| {
        s.jwt.algorithm = "EdDSA".into();
        s.jwt.key_rotation_secs = rotation;
        s.jwt.key_publish_ahead_secs = ahead;
        s.sessions.reuse_grace_secs = grace;
    })
    .await
}

#[tokio::test]
async fn only_one_key_is_made_when_several_instances_find_rotation_due_at_once() {
    let app = eddsa_app(1000, 60, 0).await;
    let schedule = KeySchedule::of(&app.settings);
    let sealer = Sealer::new(&app.settings.jwt.secret);
    let checkers = 6;
    let barrier = Arc::new(Barrier::new(checkers));

    let made: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..checkers)
            .map(|_| {
                let barrier = barrier.clone();
                let (url, sealer) = (app.db_url.clone(), &sealer);
                let schedule = &schedule;
                scope.spawn(move || {
                    let mut conn = PgConnection::establish(&url).unwrap();
                    let maker = KeyMaker {
                        alg: SigningAlgorithm::EdDsa,
                        sealer,
                        schedule,
                    };
                    let later = || chrono::Utc::now() + chrono::Duration::seconds(1001);
                    barrier.wait();
                    maker
                        .make_if_due(&mut conn, later, false)
                        .unwrap()
                        .is_some()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    assert_eq!(made.iter().filter(|m| **m).count(), 1, "{made:?}");
    assert_eq!(key_count(&app), 2);
}

#[tokio::test]
async fn two_instances_rotate_on_schedule_with_one_new_key_that_both_sign_with() {
    let app = eddsa_app(1000, 60, 0).await;
    let other = start_with_clock(app.settings.clone(), app.clock.clone()).await;
    let email = app.new_user().await;
    let first = kid_of(&app.login_ok(&email).await.access);

    app.advance(Duration::from_secs(1001));

    let mut waited = 0;
    while key_count(&app) < 2 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    // Both instances have checked by now (they poll every 100 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(key_count(&app), 2);
    app.advance(Duration::from_secs(61));
    let mut kids = Vec::new();
    for instance in [&app, &other] {
        for _ in 0..100 {
            let kid = kid_of(&instance.login_ok(&email).await.access);
            if kid != first {
                kids.push(kid);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(kids.len(), 2, "both instances moved to the new key");
    assert_eq!(kids[0], kids[1]);
}

#[tokio::test]
async fn a_repeat_within_the_grace_gets_the_very_same_token_in_eddsa_mode() {
    let app = eddsa_app(0, 0, 30).await;
    let (_, first) = app.logged_in().await;
    let second = app.reissue_ok(&first.refresh).await;

    let repeat = app.reissue_ok(&first.refresh).await;

    assert_eq!(repeat.refresh, second.refresh);
    assert_eq!(app.me(&repeat.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_repeat_within_the_grace_after_a_key_change_is_signed_by_the_old_key_again() {
    let app = eddsa_app(0, 0, 30).await;
    let (email, first) = app.logged_in().await;
    let second = app.reissue_ok(&first.refresh).await;
    let old = kid_of(&second.refresh);
    let output = authgate_keys(&app, &["keys", "rotate"]);
    assert!(output.status.success());
    let new = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    for _ in 0..100 {
        if kid_of(&app.login_ok(&email).await.access) == new {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let repeat = app.reissue_ok(&first.refresh).await;

    assert_eq!(repeat.refresh, second.refresh);
    assert_eq!(kid_of(&repeat.refresh), old);
    assert_eq!(kid_of(&repeat.access), new);
    // The chain goes on from it with the new key.
    let third = app.reissue_ok(&repeat.refresh).await;
    assert_eq!(kid_of(&third.refresh), new);
}

#[test]
fn start_up_refuses_an_unknown_algorithm_with_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["serve"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")
        .env("AUTHGATE__JWT__ALGORITHM", "ES256")
        .env_remove("AUTHGATE_ENV")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("jwt.algorithm"), "{stderr}");
}

#[tokio::test]
async fn keys_rotate_in_hs256_mode_exits_non_zero_with_one_line() {
    let app = spawn_app_with(|_| {}).await;

    let output = authgate_keys(&app, &["keys", "rotate"]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HS256"), "{stderr}");
    assert_eq!(key_count(&app), 0);
    let listed = authgate_keys(&app, &["keys", "list"]);
    assert!(listed.status.success());
    assert!(listed.stdout.is_empty());
}
