use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, assert_unauthorized, claims_of, spawn_app, TestApp};

/// Runs `authgate` as an operator would, against this test's database.
pub fn authgate(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AUTHGATE__DATABASE__URL")
        .env("DATABASE_URL", &app.db_url)
        .env("AUTHGATE_ENV", "test")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run authgate")
}

#[tokio::test]
async fn admin_grant_gives_the_role_at_the_next_login_or_reissue() {
    let app = spawn_app().await;
    let (email, before) = app.logged_in().await;

    let output = authgate(
        &app,
        &["admin", "grant", &format!("  {}  ", email.to_uppercase())],
    );

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1);
    assert_eq!(claims_of(&before.access)["roles"], serde_json::json!([]));
    let reissued = app.reissue_ok(&before.refresh).await;
    assert_eq!(
        claims_of(&reissued.access)["roles"],
        serde_json::json!(["admin"])
    );
    let me: Value = app
        .me(&app.login_ok(&email).await.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], serde_json::json!(["admin"]));
}

#[tokio::test]
async fn admin_grant_of_an_unknown_email_exits_non_zero_with_one_line() {
    let app = spawn_app().await;

    let output = authgate(&app, &["admin", "grant", "nobody@example.org"]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nobody@example.org"), "{stderr}");
}

pub async fn admin(app: &TestApp) -> crate::helpers::Pair {
    let email = app.new_user().await;
    assert!(authgate(app, &["admin", "grant", &email]).status.success());
    app.login_ok(&email).await
}

#[tokio::test]
async fn an_admin_can_end_every_session_of_a_user() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let (email, first) = app.logged_in().await;
    let second = app.login_ok(&email).await;
    let user_id = claims_of(&first.access)["sub"].as_str().unwrap().to_owned();

    let response = app
        .post_with(
            &format!("/admin/users/{user_id}/revoke-sessions"),
            &admin.access,
        )
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for pair in [&first, &second] {
        assert_unauthorized(app.me(&pair.access).await, "session_revoked").await;
        assert_unauthorized(app.reissue(&pair.refresh).await, "session_revoked").await;
    }
    assert_eq!(app.me(&admin.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn force_logout_is_403_forbidden_for_everyone_else() {
    let app = spawn_app().await;
    let (_, victim) = app.logged_in().await;
    let (_, someone) = app.logged_in().await;
    let user_id = claims_of(&victim.access)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/users/{user_id}/revoke-sessions");

    let response = app.post_with(&path, &someone.access).await;
    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    // Even on their own account, without the role.
    let own = format!(
        "/admin/users/{}/revoke-sessions",
        claims_of(&someone.access)["sub"].as_str().unwrap()
    );
    assert_error(
        app.post_with(&own, &someone.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(app.me(&victim.access).await.status(), StatusCode::OK);
    // Unauthenticated: 401, before the id is looked at.
    let response = app.post(&path).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn force_logout_of_an_unknown_user_is_404() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let response = app
            .post_with(&format!("/admin/users/{id}/revoke-sessions"), &admin.access)
            .await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}
