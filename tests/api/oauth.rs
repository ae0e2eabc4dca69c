//! OAuth 2.0 (SPEC 7.2): metadata, the refresh-token grant, revocation,
//! introspection, and the clients CLI.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::admin::authgate;
use crate::helpers::{
    assert_error_with, assert_unauthorized, spawn_app, spawn_app_with, Pair, TestApp,
};

const FORM: &str = "application/x-www-form-urlencoded";

async fn grant(app: &TestApp, refresh: &str) -> Response {
    app.post_form(
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await
}

async fn revoke(app: &TestApp, token: &str, hint: Option<&str>) -> Response {
    let mut form = vec![("token", token)];
    form.extend(hint.map(|hint| ("token_type_hint", hint)));
    app.post_form("/oauth/revoke", &form).await
}

/// The same claims signed with a key that is not ours.
fn signed_by_another_key(token: &str) -> String {
    let other_key = authgate::tokens::TokenKeys::new(
        &authgate::tokens::SecretKey::new("some-other-secret-key-0123456789abcdef"),
        "authgate",
        "authgate-clients",
    );
    let claims: authgate::tokens::Claims =
        serde_json::from_value(crate::helpers::claims_of(token)).unwrap();
    other_key.sign(&claims)
}

/// A registered client's credentials, made by the CLI.
struct Client {
    id: String,
    secret: String,
}

fn add_client(app: &TestApp, name: &str) -> Client {
    let output = authgate(app, &["clients", "add", name]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in {stdout}"))
            .to_owned()
    };
    Client {
        id: field("client_id="),
        secret: field("client_secret="),
    }
}

async fn introspect_as(app: &TestApp, client: &Client, token: &str) -> Response {
    app.client
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, client: &Client, token: &str) -> Value {
    let response = introspect_as(app, client, token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// Asserts that introspection answers exactly `{"active": false}`.
async fn assert_inactive(app: &TestApp, client: &Client, token: &str) {
    assert_eq!(
        introspect(app, client, token).await,
        json!({ "active": false }),
        "{token:.30}"
    );
}

/// Asserts an RFC 6749 §5.2 error: the status, the code, a description,
/// nothing else, and `no-store`.
async fn assert_oauth_error(
    response: Response,
    status: StatusCode,
    code: &str,
) -> reqwest::header::HeaderMap {
    let headers = assert_error_with(response, status, code, "error_description").await;
    assert_eq!(headers["cache-control"], "no-store");
    headers
}

async fn assert_empty_200(response: Response) {
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap().is_empty());
}

// --- metadata ---------------------------------------------------------------

#[tokio::test]
async fn metadata_lists_every_endpoint_as_an_absolute_url_under_the_server() {
    let app = spawn_app().await;

    let response = app.get("/.well-known/oauth-authorization-server").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let doc: Value = response.json().await.unwrap();
    let base = &app.address;
    assert_eq!(
        doc,
        json!({
            "issuer": "authgate",
            "token_endpoint": format!("{base}/oauth/token"),
            "revocation_endpoint": format!("{base}/oauth/revoke"),
            "introspection_endpoint": format!("{base}/oauth/introspect"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "grant_types_supported": ["refresh_token"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        })
    );
}

#[tokio::test]
async fn metadata_urls_follow_server_public_url() {
    let app = spawn_app_with(|s| {
        s.server.public_url = Some("https://auth.example.com/base/".into());
        s.jwt.issuer = "https://auth.example.com/base".into();
    })
    .await;

    let doc: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(doc["issuer"], "https://auth.example.com/base");
    assert_eq!(
        doc["token_endpoint"],
        "https://auth.example.com/base/oauth/token"
    );
    assert_eq!(
        doc["introspection_endpoint"],
        "https://auth.example.com/base/oauth/introspect"
    );
    assert_eq!(
        doc["jwks_uri"],
        "https://auth.example.com/base/.well-known/jwks.json"
    );
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let app = spawn_app().await;
    let response = app.post("/.well-known/oauth-authorization-server").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
    for path in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let response = app.get(path).await;
        let headers =
            assert_oauth_error(response, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
        assert_eq!(headers["allow"], "POST", "{path}");
    }
}

// --- the refresh-token grant ------------------------------------------------

#[tokio::test]
async fn the_refresh_token_grant_rotates_and_its_token_rotates_again_at_auth_reissue() {
    let app = spawn_app().await;
    let (_, first) = app.logged_in().await;

    let response = grant(&app, &first.refresh).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["session_id"], first.session_id.as_str());
    let second = Pair::from_json(body);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);
    // One chain, whichever door it goes through.
    let third = app.reissue_ok(&second.refresh).await;
    let fourth = grant(&app, &third.refresh).await;
    assert_eq!(fourth.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_spent_refresh_token_is_invalid_grant_and_revokes_the_session() {
    let app = spawn_app().await;
    let (_, first) = app.logged_in().await;
    let second = Pair::from_json(grant(&app, &first.refresh).await.json().await.unwrap());

    let response = grant(&app, &first.refresh).await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_oauth_error(
        grant(&app, &second.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_unauthorized(app.me(&second.access).await, "session_revoked").await;
    assert_unauthorized(app.reissue(&second.refresh).await, "session_revoked").await;
}

#[tokio::test]
async fn an_expired_refresh_token_is_invalid_grant() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;

    app.advance(Duration::from_secs(1_209_600 + 1));

    let response = grant(&app, &pair.refresh).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_refresh_token_of_an_ended_session_is_invalid_grant() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    assert_eq!(
        app.post_with("/auth/logout", &pair.access).await.status(),
        StatusCode::NO_CONTENT
    );

    let response = grant(&app, &pair.refresh).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn garbage_foreign_and_access_tokens_are_invalid_grant() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    for token in [
        "garbage",
        "a.b.c",
        &pair.access,
        &signed_by_another_key(&pair.refresh),
    ] {
        let response = grant(&app, token).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    // None of it touched the session.
    assert_eq!(grant(&app, &pair.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn other_grant_types_are_unsupported_grant_type() {
    let app = spawn_app().await;
    let (email, pair) = app.logged_in().await;
    for grant_type in [
        "password",
        "authorization_code",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
        "REFRESH_TOKEN",
        "nonsense",
    ] {
        let response = app
            .post_form(
                "/oauth/token",
                &[
                    ("grant_type", grant_type),
                    ("refresh_token", &pair.refresh),
                    ("username", &email),
                    ("password", crate::helpers::PASSWORD),
                ],
            )
            .await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
    // The refresh token was not spent by any of them.
    assert_eq!(grant(&app, &pair.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn missing_empty_or_repeated_parameters_are_invalid_request() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let r = pair.refresh.as_str();
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("refresh_token", r)],
        &[("grant_type", ""), ("refresh_token", r)],
        &[("grant_type", "refresh_token")],
        &[("grant_type", "refresh_token"), ("refresh_token", "")],
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r),
            ("refresh_token", r),
        ],
    ];
    for form in cases {
        let response = app.post_form("/oauth/token", form).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    // client_id and scope are accepted and ignored.
    let response = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", r),
                ("client_id", "anyone"),
                ("scope", "openid"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_is_not_a_form_is_invalid_request() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let as_form = format!("grant_type=refresh_token&refresh_token={}", pair.refresh);
    let as_json = json!({ "grant_type": "refresh_token", "refresh_token": pair.refresh });
    for path in ["/oauth/token", "/oauth/revoke"] {
        for (content_type, body) in [
            (Some("application/json"), as_json.to_string()),
            (Some("text/plain"), as_form.clone()),
            (None, as_form.clone()),
        ] {
            let response = app.post_raw(path, content_type, body).await;
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
    }
    // The session is untouched.
    assert_eq!(grant(&app, &pair.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_in_the_rfc_format() {
    let app = spawn_app().await;
    let body = format!(
        "grant_type=refresh_token&refresh_token={}",
        "x".repeat(70_000)
    );
    for path in ["/oauth/token", "/oauth/revoke"] {
        let response = app.post_raw(path, Some(FORM), body.clone()).await;
        assert_oauth_error(response, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
    }
}

// --- revocation -------------------------------------------------------------

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session() {
    let app = spawn_app().await;
    let (email, pair) = app.logged_in().await;
    let other = app.login_ok(&email).await;

    let response = revoke(&app, &pair.refresh, Some("refresh_token")).await;

    assert_empty_200(response).await;
    assert_unauthorized(app.me(&pair.access).await, "session_revoked").await;
    assert_unauthorized(app.reissue(&pair.refresh).await, "session_revoked").await;
    let reason: Option<String> = revoked_reason(&app, &pair.session_id);
    assert_eq!(reason.as_deref(), Some("logout"));
    // Only that session.
    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoking_an_access_token_ends_its_session() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;

    // A wrong hint does not matter: the token says what it is.
    let response = revoke(&app, &pair.access, Some("refresh_token")).await;

    assert_empty_200(response).await;
    assert_unauthorized(app.me(&pair.access).await, "session_revoked").await;
    assert_oauth_error(
        grant(&app, &pair.refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn revoking_unknown_malformed_expired_or_revoked_tokens_is_200_with_an_empty_body() {
    let app = spawn_app().await;
    let (_, ended) = app.logged_in().await;
    assert_empty_200(revoke(&app, &ended.refresh, None).await).await;
    let (_, live) = app.logged_in().await;
    let expired_access = live.access.clone();
    app.advance(Duration::from_secs(901));

    for token in [
        "garbage",
        "a.b.c",
        &"x".repeat(5000),
        &ended.refresh,
        &ended.access,
        &expired_access,
    ] {
        assert_empty_200(revoke(&app, token, None).await).await;
    }
    // An expired access token is dead already: its session lives on.
    app.reissue_ok(&live.refresh).await;
}

#[tokio::test]
async fn revoking_without_a_token_is_invalid_request() {
    let app = spawn_app().await;
    for form in [
        &[][..],
        &[("token", "")],
        &[("token_type_hint", "access_token")],
    ] {
        let response = app.post_form("/oauth/revoke", form).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

/// The session's `revoked_reason`, read directly.
pub fn revoked_reason(app: &TestApp, session_id: &str) -> Option<String> {
    #[derive(QueryableByName)]
    struct Reason {
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        revoked_reason: Option<String>,
    }
    let id = uuid::Uuid::parse_str(session_id).unwrap();
    diesel::sql_query("SELECT revoked_reason FROM sessions WHERE id = $1")
        .bind::<SqlUuid, _>(id)
        .get_result::<Reason>(&mut app.db())
        .unwrap()
        .revoked_reason
}

// --- introspection ----------------------------------------------------------

#[tokio::test]
async fn introspection_without_valid_client_credentials_is_401_invalid_client() {
    let app = spawn_app().await;
    let client = add_client(&app, "resource server");
    let (_, pair) = app.logged_in().await;
    let wrong_secret = Client {
        id: client.id.clone(),
        secret: "0".repeat(64),
    };
    let unknown = Client {
        id: "0".repeat(32),
        secret: client.secret.clone(),
    };

    let mut requests = vec![
        app.client.post(app.url("/oauth/introspect")),
        app.client
            .post(app.url("/oauth/introspect"))
            .header("authorization", "Basic !!!not-base64"),
        app.client
            .post(app.url("/oauth/introspect"))
            .header("authorization", "Basic"),
        app.client
            .post(app.url("/oauth/introspect"))
            .bearer_auth(&pair.access),
        app.client
            .post(app.url("/oauth/introspect"))
            .basic_auth(&client.id, None::<&str>),
    ];
    for credentials in [&wrong_secret, &unknown] {
        requests.push(
            app.client
                .post(app.url("/oauth/introspect"))
                .basic_auth(&credentials.id, Some(&credentials.secret)),
        );
    }
    for request in requests {
        let response = request
            .form(&[("token", &pair.access)])
            .send()
            .await
            .unwrap();
        let headers =
            assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic"), "{challenge}");
    }
}

#[tokio::test]
async fn an_active_access_token_is_described_in_full() {
    let app = spawn_app().await;
    let client = add_client(&app, "api");
    let (email, pair) = app.logged_in().await;
    let claims = crate::helpers::claims_of(&pair.access);

    let answer = introspect(&app, &client, &pair.access).await;

    assert_eq!(
        answer,
        json!({
            "active": true,
            "token_type": "access_token",
            "sub": claims["sub"],
            "sid": pair.session_id,
            "jti": claims["jti"],
            "iat": claims["iat"],
            "exp": claims["exp"],
            "iss": "authgate",
            "aud": "authgate-clients",
            "username": email,
        })
    );
}

#[tokio::test]
async fn an_active_refresh_token_is_described_and_inactive_once_spent() {
    let app = spawn_app().await;
    let client = add_client(&app, "api");
    let (email, pair) = app.logged_in().await;
    let claims = crate::helpers::claims_of(&pair.refresh);

    let answer = introspect(&app, &client, &pair.refresh).await;

    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    assert_eq!(answer["jti"], claims["jti"]);
    assert_eq!(answer["exp"], claims["exp"]);
    assert_eq!(answer["username"], email.as_str());
    assert_eq!(answer["sid"], pair.session_id.as_str());

    let next = app.reissue_ok(&pair.refresh).await;
    assert_inactive(&app, &client, &pair.refresh).await;
    assert_eq!(
        introspect(&app, &client, &next.refresh).await["active"],
        true
    );
}

#[tokio::test]
async fn introspection_asks_postgresql_not_the_revoked_set() {
    let app = spawn_app().await;
    let client = add_client(&app, "api");
    let (_, pair) = app.logged_in().await;
    assert_eq!(
        introspect(&app, &client, &pair.access).await["active"],
        true
    );

    // Revoked behind the server's back: no NOTIFY, nothing in any set yet.
    diesel::sql_query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin' WHERE id = $1",
    )
    .bind::<SqlUuid, _>(uuid::Uuid::parse_str(&pair.session_id).unwrap())
    .execute(&mut app.db())
    .unwrap();

    for token in [&pair.access, &pair.refresh] {
        assert_inactive(&app, &client, token).await;
    }
}

#[tokio::test]
async fn tokens_are_inactive_after_logout() {
    let app = spawn_app().await;
    let client = add_client(&app, "api");
    let (_, pair) = app.logged_in().await;

    app.post_with("/auth/logout", &pair.access).await;

    for token in [&pair.access, &pair.refresh] {
        assert_inactive(&app, &client, token).await;
    }
}

#[tokio::test]
async fn expired_tokens_are_inactive() {
    let app = spawn_app().await;
    let client = add_client(&app, "api");
    let (_, pair) = app.logged_in().await;

    app.advance(Duration::from_secs(901));
    assert_inactive(&app, &client, &pair.access).await;
    assert_eq!(
        introspect(&app, &client, &pair.refresh).await["active"],
        true
    );

    app.advance(Duration::from_secs(1_209_600));
    assert_inactive(&app, &client, &pair.refresh).await;
}

#[tokio::test]
async fn garbage_and_foreign_tokens_are_exactly_active_false_and_a_missing_token_is_invalid_request(
) {
    let app = spawn_app().await;
    let client = add_client(&app, "api");
    let (_, pair) = app.logged_in().await;
    for token in [
        "garbage",
        "a.b.c",
        &"x".repeat(5000),
        &signed_by_another_key(&pair.access),
        &signed_by_another_key(&pair.refresh),
    ] {
        assert_inactive(&app, &client, token).await;
    }
    let response = app
        .client
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

// --- the clients CLI --------------------------------------------------------

#[tokio::test]
async fn clients_add_prints_the_secret_once_and_stores_only_its_hash() {
    let app = spawn_app().await;

    let output = authgate(&app, &["clients", "add", "  billing api  "]);

    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let id = lines[0].strip_prefix("client_id=").unwrap();
    let secret = lines[1].strip_prefix("client_secret=").unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(secret.len(), 64);

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        row: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT t::text || encode(t.secret_hash, 'hex') || encode(t.secret_hash, 'escape') AS row
           FROM oauth_clients t",
    )
    .load(&mut app.db())
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].row.contains(id));
    assert!(rows[0].row.contains("billing api"));
    assert!(!rows[0].row.contains(secret), "the secret is in the table");

    let list = authgate(&app, &["clients", "list"]);
    let list = String::from_utf8(list.stdout).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with(&format!("{id}\tbilling api\t")), "{list}");
    assert!(!list.contains(secret));
}

#[tokio::test]
async fn a_removed_client_can_no_longer_introspect() {
    let app = spawn_app().await;
    let client = add_client(&app, "gone soon");
    let keeper = add_client(&app, "stays");
    let (_, pair) = app.logged_in().await;
    assert_eq!(
        introspect(&app, &client, &pair.access).await["active"],
        true
    );

    let output = authgate(&app, &["clients", "remove", &client.id]);

    assert!(output.status.success());
    let response = introspect_as(&app, &client, &pair.access).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(
        introspect(&app, &keeper, &pair.access).await["active"],
        true
    );
    let list = String::from_utf8(authgate(&app, &["clients", "list"]).stdout).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
}

#[tokio::test]
async fn clients_remove_of_an_unknown_id_exits_non_zero_with_one_line() {
    let app = spawn_app().await;

    let output = authgate(&app, &["clients", "remove", "no-such-client"]);

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-client"), "{stderr}");
}

#[tokio::test]
async fn clients_add_refuses_an_empty_name() {
    let app = spawn_app().await;
    let output = authgate(&app, &["clients", "add", "  "]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}
