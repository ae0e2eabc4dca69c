//! Login rate limits (SPEC 3): a slot reserved before the password is
//! checked, kept in PostgreSQL so that instances share it, 0 disabling a
//! limit, and the client's address behind trusted proxies.

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use futures_util::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app_with, start, Setup, TestApp, PASSWORD};

const WRONG: &str = "wrong password!";

/// A login through a proxy that says the client is `forwarded_for`.
async fn login_via(app: &TestApp, forwarded_for: &[&str], email: &str, password: &str) -> Response {
    let mut request = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({ "email": email, "password": password }));
    for value in forwarded_for {
        request = request.header("x-forwarded-for", *value);
    }
    request.send().await.unwrap()
}

/// How many responses had each status: (401s, 429s), asserting there was
/// nothing else.
fn tally(responses: &[StatusCode]) -> (usize, usize) {
    let unauthorized = responses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = responses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(unauthorized + limited, responses.len(), "{responses:?}");
    (unauthorized, limited)
}

async fn statuses(responses: Vec<Response>) -> Vec<StatusCode> {
    responses.iter().map(Response::status).collect()
}

/// bcrypt verifications this instance ran, from `GET /metrics`.
async fn bcrypt_verifications(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("authgate_bcrypt_runs_total{op=\"verify\"}"))
        .unwrap_or_else(|| panic!("no bcrypt metric in {text}"));
    line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds")
}

/// The `ip` of the session that `pair` belongs to, as the API lists it.
async fn session_ip(app: &TestApp, login: Response) -> String {
    assert_eq!(login.status(), StatusCode::OK);
    let pair: Value = login.json().await.unwrap();
    let access = pair["access_token"].as_str().unwrap();
    let sessions: Value = app
        .get_with("/auth/sessions", access)
        .await
        .json()
        .await
        .unwrap();
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .expect("the current session");
    current["ip"].as_str().expect("an ip").to_owned()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn failure_rows(app: &TestApp) -> i64 {
    diesel::sql_query("SELECT count(*) AS n FROM login_failures")
        .get_result::<Count>(&mut app.db())
        .unwrap()
        .n
}

fn rows_of_key(app: &TestApp, key: &str) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM login_failures WHERE key_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind::<Text, _>(key)
    .get_result::<Count>(&mut app.db())
    .unwrap()
    .n
}

#[tokio::test]
async fn forty_simultaneous_wrong_passwords_for_one_email_check_only_the_limit() {
    let app = spawn_app_with(|s| s.ratelimit.login_failures_per_email = 5).await;
    let email = app.new_user().await;

    let responses = join_all((0..40).map(|_| app.login(&email, WRONG))).await;

    let (unauthorized, limited) = tally(&statuses(responses).await);
    assert_eq!((unauthorized, limited), (5, 35));
    assert_eq!(bcrypt_verifications(&app).await, 5);
    let response = app.login(&email, PASSWORD).await;
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn forty_simultaneous_wrong_passwords_from_one_ip_check_only_the_limit() {
    let app = spawn_app_with(|s| s.ratelimit.login_failures_per_ip = 5).await;
    let email = app.new_user().await;

    let app = &app;
    let responses = join_all(
        (0..40).map(|i| async move { app.login(&format!("nobody-{i}@example.org"), WRONG).await }),
    )
    .await;

    let (unauthorized, limited) = tally(&statuses(responses).await);
    assert_eq!((unauthorized, limited), (5, 35));
    // Unknown emails are verified against the decoy: still one bcrypt each.
    assert_eq!(bcrypt_verifications(app).await, 5);
    let response = app.login(&email, PASSWORD).await;
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

// Shared limits across instances, on PostgreSQL and behind PgBouncer.
on_both_setups!(
    two_instances_count_against_the_same_limits,
    simultaneous_wrong_passwords_on_two_instances_check_only_the_limit,
);

async fn two_instances_count_against_the_same_limits(setup: Setup) {
    let one = setup
        .spawn_with(|s| s.ratelimit.login_failures_per_email = 3)
        .await;
    let two = start(one.settings.clone()).await;
    let email = one.new_user().await;
    for _ in 0..3 {
        let response = one.login(&email, WRONG).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    let wrong = two.login(&email, WRONG).await;
    let right = two.login(&email, PASSWORD).await;

    assert_error(wrong, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_error(right, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(bcrypt_verifications(&two).await, 0);
}

async fn simultaneous_wrong_passwords_on_two_instances_check_only_the_limit(setup: Setup) {
    let one = setup
        .spawn_with(|s| s.ratelimit.login_failures_per_email = 5)
        .await;
    let two = start(one.settings.clone()).await;
    let email = one.new_user().await;

    let responses = join_all((0..40).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        app.login(&email, WRONG)
    }))
    .await;

    let (unauthorized, limited) = tally(&statuses(responses).await);
    assert_eq!((unauthorized, limited), (5, 35));
    assert_eq!(
        bcrypt_verifications(&one).await + bcrypt_verifications(&two).await,
        5
    );
}

#[tokio::test]
async fn limits_of_zero_disable_them_without_failing_a_request() {
    let app = spawn_app_with(|s| {
        s.ratelimit.login_failures_per_email = 0;
        s.ratelimit.login_failures_per_ip = 0;
    })
    .await;
    let email = app.new_user().await;
    for _ in 0..5 {
        let response = app.login(&email, WRONG).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    let responses = join_all((0..15).map(|_| app.login(&email, WRONG))).await;

    assert_eq!(tally(&statuses(responses).await), (15, 0));
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(failure_rows(&app), 0, "nothing is recorded");
}

#[tokio::test]
async fn a_zero_email_limit_leaves_the_ip_limit_in_force() {
    let app = spawn_app_with(|s| {
        s.ratelimit.login_failures_per_email = 0;
        s.ratelimit.login_failures_per_ip = 3;
    })
    .await;
    let email = app.new_user().await;
    for _ in 0..3 {
        let response = app.login(&email, WRONG).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    let response = app.login("someone-else@example.org", WRONG).await;

    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn a_zero_ip_limit_leaves_the_email_limit_in_force() {
    let app = spawn_app_with(|s| {
        s.ratelimit.login_failures_per_email = 3;
        s.ratelimit.login_failures_per_ip = 0;
    })
    .await;
    let email = app.new_user().await;
    let other = app.new_user().await;
    for _ in 0..3 {
        let response = app.login(&email, WRONG).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    let response = app.login(&email, PASSWORD).await;

    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    for i in 0..5 {
        let response = app.login(&format!("ghost-{i}-{other}"), WRONG).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login(&other, PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn retry_after_counts_down_and_the_window_passing_lets_logins_through() {
    let app = spawn_app_with(|s| {
        s.ratelimit.login_failures_per_email = 3;
        s.ratelimit.window_secs = 120;
    })
    .await;
    let email = app.new_user().await;
    for _ in 0..3 {
        app.login(&email, WRONG).await;
    }

    let first = app.login(&email, PASSWORD).await;
    let first = assert_error(first, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    app.advance(Duration::from_secs(60));
    let later = app.login(&email, PASSWORD).await;
    let later = assert_error(later, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    app.advance(Duration::from_secs(61));
    let after = app.login(&email, PASSWORD).await;

    assert!((119..=120).contains(&retry_after(&first)), "{first:?}");
    assert!((59..=60).contains(&retry_after(&later)), "{later:?}");
    assert_eq!(after.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_successful_login_is_not_counted_nor_forgives_earlier_failures() {
    let app = spawn_app_with(|s| s.ratelimit.login_failures_per_email = 3).await;
    let email = app.new_user().await;
    let key = format!("email:{email}");
    for _ in 0..2 {
        let response = app.login(&email, WRONG).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    // The right password reserves a slot (the third) and gives it back.
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(rows_of_key(&app, &key), 2);
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(rows_of_key(&app, &key), 2);
    // The third failure is still allowed to be checked, and is the last.
    let third = app.login(&email, WRONG).await;
    let fourth = app.login(&email, PASSWORD).await;

    assert_error(third, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_error(fourth, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn malformed_logins_are_not_counted() {
    let app = spawn_app_with(|s| {
        s.ratelimit.login_failures_per_email = 1;
        s.ratelimit.login_failures_per_ip = 1;
    })
    .await;
    let email = app.new_user().await;
    for body in [
        json!({ "email": email }),
        json!({ "email": format!("{email}@x"), "password": WRONG }),
        json!({ "email": "", "password": WRONG }),
        json!({ "password": WRONG }),
    ] {
        let response = app.post_json("/auth/login", &body).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let response = app
        .post_raw("/auth/login", Some("application/json"), "{\"email\": ")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    assert_eq!(failure_rows(&app), 0);
    assert_eq!(app.login(&email, PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn failures_are_stored_under_the_sha256_of_their_keys_only() {
    let app = spawn_app_with(|_| {}).await;

    app.login("  Ann@Example.ORG ", WRONG).await;

    assert_eq!(failure_rows(&app), 2);
    assert_eq!(rows_of_key(&app, "email:ann@example.org"), 1);
    assert_eq!(rows_of_key(&app, "ip:127.0.0.1"), 1);
}

#[tokio::test]
async fn purge_expired_deletes_the_failures_that_left_the_window() {
    let app = spawn_app_with(|s| s.ratelimit.window_secs = 60).await;
    for i in 0..3 {
        app.login(&format!("nobody-{i}@example.org"), WRONG).await;
    }
    let window = app.settings.ratelimit.window();
    let purge = |app: &TestApp| {
        authgate::ratelimit::purge_expired(&mut app.db(), app.clock.now(), window).unwrap()
    };
    assert_eq!(purge(&app), 0, "nothing has left the window yet");
    assert_eq!(failure_rows(&app), 6);

    app.advance(Duration::from_secs(61));

    assert_eq!(purge(&app), 6);
    assert_eq!(failure_rows(&app), 0);
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = spawn_app_with(|s| {
        s.ratelimit.login_failures_per_email = 0;
        s.ratelimit.login_failures_per_ip = 3;
    })
    .await;
    let email = app.new_user().await;
    let login = login_via(&app, &["203.0.113.9"], &email, PASSWORD).await;
    assert_eq!(session_ip(&app, login).await, "127.0.0.1");
    for i in 0..3 {
        let forwarded = format!("198.51.100.{i}");
        let response = login_via(&app, &[&forwarded], &email, WRONG).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    let response = login_via(&app, &["192.0.2.77"], &email, PASSWORD).await;

    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_ip_limit_and_session_ip() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.ratelimit.login_failures_per_email = 0;
        s.ratelimit.login_failures_per_ip = 2;
    })
    .await;
    let email = app.new_user().await;
    for _ in 0..2 {
        let response = login_via(&app, &["198.51.100.1"], &email, WRONG).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    let attacker = login_via(&app, &["198.51.100.1"], &email, PASSWORD).await;
    let someone = login_via(&app, &["198.51.100.2"], &email, PASSWORD).await;
    let direct = app.login(&email, PASSWORD).await;

    assert_error(attacker, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(session_ip(&app, someone).await, "198.51.100.2");
    assert_eq!(session_ip(&app, direct).await, "127.0.0.1");
}

#[tokio::test]
async fn the_client_is_the_rightmost_forwarded_address_that_is_not_a_trusted_proxy() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into(), "10.0.0.0/8".into()];
    })
    .await;
    let email = app.new_user().await;

    let one_header = login_via(&app, &["6.6.6.6, 1.2.3.4, 10.0.0.1"], &email, PASSWORD).await;
    let two_headers = login_via(&app, &["6.6.6.6, 1.2.3.5", "10.0.0.1"], &email, PASSWORD).await;
    let all_trusted = login_via(&app, &["10.0.0.3, 10.0.0.1"], &email, PASSWORD).await;

    assert_eq!(session_ip(&app, one_header).await, "1.2.3.4");
    assert_eq!(session_ip(&app, two_headers).await, "1.2.3.5");
    assert_eq!(session_ip(&app, all_trusted).await, "10.0.0.3");
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64() {
    let app = spawn_app_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
        s.ratelimit.login_failures_per_email = 0;
        s.ratelimit.login_failures_per_ip = 2;
    })
    .await;
    let email = app.new_user().await;
    for client in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
        let response = login_via(&app, &[client], &email, WRONG).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    let same_64 = login_via(&app, &["2001:db8:1:2::abcd"], &email, PASSWORD).await;
    let next_64 = login_via(&app, &["2001:db8:1:3::1"], &email, PASSWORD).await;

    assert_error(same_64, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(session_ip(&app, next_64).await, "2001:db8:1:3::1");
    assert_eq!(rows_of_key(&app, "ip:2001:db8:1:2::/64"), 2);
}
