//! Whatever a client sends, the answer is the spec's 4xx JSON: never a 500,
//! never a panic.

use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app};

const JSON_PATHS: [&str; 4] = [
    "/auth/signup",
    "/auth/login",
    "/auth/reissue",
    "/auth/logout",
];

#[tokio::test]
async fn malformed_json_is_400_invalid_request() {
    let app = spawn_app().await;
    for path in JSON_PATHS {
        for body in [
            "{",
            "{\"email\": }",
            "null x",
            "\u{0}\u{1}",
            "[1, 2",
            "{\"refresh_token\": \"a\"",
            "true",
        ] {
            let response = app.post_raw(path, Some("application/json"), body).await;
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
    }
}

#[tokio::test]
async fn a_wrong_content_type_is_400_invalid_request() {
    let app = spawn_app().await;
    for path in JSON_PATHS {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("garbage"),
        ] {
            let body = r#"{"email":"a@example.org","password":"12345678","refresh_token":"x"}"#;
            let response = app.post_raw(path, content_type, body).await;
            assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_invalid_request() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"email":"a@example.org","password":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    for path in JSON_PATHS {
        let response = app
            .post_raw(path, Some("application/json"), big.clone())
            .await;
        assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_chunked_body_over_64_kib_is_413_invalid_request() {
    let app = spawn_app().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app
        .post_raw("/auth/login", Some("application/json"), body)
        .await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_read() {
    let app = spawn_app().await;
    let mut body = br#"{"email":"a@example.org","password":"wrong password"}"#.to_vec();
    body.resize(64 * 1024, b' ');
    let response = app
        .post_raw("/auth/login", Some("application/json"), body)
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn odd_but_valid_json_is_handled() {
    let app = spawn_app().await;
    // Unicode, escapes, extra fields.
    let response = app
        .post_json(
            "/auth/signup",
            &serde_json::json!({ "email": "ünï@exämple.org", "password": "pässwörd-ünicode", "extra": [1, {"a": null}] }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .post_json(
            "/auth/login",
            &serde_json::json!({ "email": "ÜNÏ@EXÄMPLE.ORG", "password": "pässwörd-ünicode" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .post_json(
            "/auth/login",
            &serde_json::json!({ "email": "a@example.org", "password": "x".repeat(500) }),
        )
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn a_json_content_type_with_charset_is_accepted() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/auth/signup"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"email":"f@example.org","password":"12345678"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}
