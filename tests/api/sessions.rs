use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, assert_unauthorized, spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn sessions_lists_the_callers_live_sessions_with_the_current_one_marked() {
    let app = spawn_app().await;
    let email = app.new_user().await;
    let first = app.login_ok(&email).await;
    let second = app
        .client
        .post(app.url("/auth/login"))
        .header("user-agent", "authgate-tests/phone")
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let second = crate::helpers::Pair::from_json(second.json().await.unwrap());
    let (_, stranger) = app.logged_in().await;

    let response = app.get_with("/auth/sessions", &second.access).await;

    assert_eq!(response.status(), StatusCode::OK);
    let list: Vec<Value> = response.json().await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&first.session_id.as_str()) && ids.contains(&second.session_id.as_str()));
    assert!(!ids.contains(&stranger.session_id.as_str()));
    for s in &list {
        for key in ["created_at", "last_used_at", "expires_at"] {
            assert!(s[key].is_string(), "{key} in {s}");
        }
        assert_eq!(s["ip"], "127.0.0.1");
        assert_eq!(s["current"], s["id"] == second.session_id.as_str());
        assert_eq!(s.as_object().unwrap().len(), 7);
    }
    let phone = list
        .iter()
        .find(|s| s["id"] == second.session_id.as_str())
        .unwrap();
    assert_eq!(phone["user_agent"], "authgate-tests/phone");
}

#[tokio::test]
async fn sessions_leaves_out_ended_sessions() {
    let app = spawn_app().await;
    let (email, first) = app.logged_in().await;
    let second = app.login_ok(&email).await;
    app.post_with("/auth/logout", &first.access).await;

    let list: Vec<Value> = app
        .get_with("/auth/sessions", &second.access)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], second.session_id.as_str());
}

#[tokio::test]
async fn sessions_without_a_token_is_401() {
    let app = spawn_app().await;
    let response = app.get("/auth/sessions").await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn deleting_a_session_ends_it() {
    let app = spawn_app().await;
    let (email, laptop) = app.logged_in().await;
    let phone = app.login_ok(&email).await;

    let response = app
        .client
        .delete(app.url(&format!("/auth/sessions/{}", phone.session_id)))
        .bearer_auth(&laptop.access)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_unauthorized(app.me(&phone.access).await, "session_revoked").await;
    assert_unauthorized(app.reissue(&phone.refresh).await, "session_revoked").await;
    assert_eq!(app.me(&laptop.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_another_users_session_is_the_same_404_as_an_unknown_id() {
    let app = spawn_app().await;
    let (_, mine) = app.logged_in().await;
    let (_, theirs) = app.logged_in().await;
    let delete = |id: String| {
        let app = &app;
        let access = mine.access.clone();
        async move {
            app.client
                .delete(app.url(&format!("/auth/sessions/{id}")))
                .bearer_auth(access)
                .send()
                .await
                .unwrap()
        }
    };

    let foreign = delete(theirs.session_id.clone()).await;
    let unknown = delete(uuid::Uuid::new_v4().to_string()).await;
    let malformed = delete("not-a-uuid".into()).await;

    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let foreign_body = foreign.bytes().await.unwrap();
    assert_eq!(foreign_body, unknown.bytes().await.unwrap());
    assert_eq!(foreign_body, malformed.bytes().await.unwrap());
    assert_eq!(
        app.me(&theirs.access).await.status(),
        StatusCode::OK,
        "nothing happened to it"
    );
}

#[tokio::test]
async fn deleting_a_session_checks_the_token_before_the_id() {
    let app = spawn_app().await;
    for path in [
        "/auth/sessions/not-a-uuid",
        "/auth/sessions/00000000-0000-0000-0000-000000000000",
    ] {
        let response = app
            .client
            .delete(app.url(path))
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap();
        assert_unauthorized(response, "invalid_token").await;
        let response = app.client.delete(app.url(path)).send().await.unwrap();
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
}

#[tokio::test]
async fn single_session_mode_ends_the_previous_session_at_a_new_login() {
    let app = spawn_app_with(|s| s.sessions.max_per_user = 1).await;
    let (email, first) = app.logged_in().await;

    let second = app.login_ok(&email).await;

    assert_unauthorized(app.me(&first.access).await, "session_revoked").await;
    assert_unauthorized(app.reissue(&first.refresh).await, "session_revoked").await;
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn max_per_user_ends_the_oldest_sessions_beyond_n() {
    let app = spawn_app_with(|s| s.sessions.max_per_user = 2).await;
    let (email, first) = app.logged_in().await;
    let second = app.login_ok(&email).await;
    let third = app.login_ok(&email).await;

    assert_unauthorized(app.me(&first.access).await, "session_revoked").await;
    let list: Vec<Value> = app
        .get_with("/auth/sessions", &third.access)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![second.session_id.as_str(), third.session_id.as_str()]
    );
}
