use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn healthz_answers_200() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_answers_200_when_postgresql_answers() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_path_is_404_not_found() {
    let app = spawn_app().await;
    let response = app.get("/no/such/path").await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::GET, "/auth/login", "POST"),
        (reqwest::Method::PUT, "/auth/signup", "POST"),
        (reqwest::Method::POST, "/auth/me", "GET"),
        (reqwest::Method::GET, "/auth/reissue", "POST"),
        (reqwest::Method::POST, "/healthz", "GET"),
    ] {
        let response = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .unwrap();
        let headers =
            assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
        assert_eq!(headers.get("allow").unwrap(), allow, "{path}");
    }
}
