use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, PASSWORD};

#[tokio::test]
async fn signup_returns_201_with_id_and_trimmed_email() {
    let app = spawn_app().await;

    let response = app.signup("  Ann@Example.org ", PASSWORD).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], "Ann@Example.org");
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(body.as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn signup_returns_409_email_taken_for_the_same_email_in_another_case() {
    let app = spawn_app().await;
    app.signup("bob@example.org", PASSWORD).await;

    let response = app.signup(" BOB@Example.ORG", PASSWORD).await;

    assert_error(response, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn signup_stores_a_bcrypt_hash_and_never_the_password() {
    let app = spawn_app().await;
    app.signup("carol@example.org", PASSWORD).await;

    let hash: String = authgate::schema::users::table
        .select(authgate::schema::users::password_hash)
        .first(&mut app.db())
        .unwrap();

    assert!(hash.starts_with("$2b$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    assert!(bcrypt::verify(PASSWORD, &hash).unwrap());
}

#[tokio::test]
async fn signup_gives_new_users_no_roles() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let pair = app.login_ok(&email).await;

    let me: Value = app.me(&pair.access).await.json().await.unwrap();

    assert_eq!(me["roles"], json!([]));
}

#[tokio::test]
async fn signup_returns_400_for_bad_emails() {
    let app = spawn_app().await;
    let long = format!("{}@example.org", "a".repeat(250));
    for email in [
        "",
        "   ",
        "no-at-sign",
        "@example.org",
        "ann@",
        "a@b@c",
        "a b@x.io",
        "a\u{0}@x.io",
        "tab\t@x.io",
        &long,
    ] {
        let response = app.signup(email, PASSWORD).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn signup_returns_400_for_passwords_under_8_characters_or_over_72_bytes() {
    let app = spawn_app().await;
    for password in ["", "1234567", &"x".repeat(73), &"é".repeat(37)] {
        let response = app.signup("dave@example.org", password).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let response = app.signup("dave@example.org", &"x".repeat(72)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn signup_returns_400_for_missing_fields_and_wrong_types() {
    let app = spawn_app().await;
    for body in [
        json!({}),
        json!({ "email": "e@example.org" }),
        json!({ "password": PASSWORD }),
        json!({ "email": 42, "password": PASSWORD }),
        json!({ "email": "e@example.org", "password": null }),
        json!([]),
        json!("e@example.org"),
    ] {
        let response = app.post_json("/auth/signup", &body).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}
