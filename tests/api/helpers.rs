//! The test harness: every test gets its own database on the PostgreSQL
//! that `DATABASE_URL` points at (scripts/test.sh starts one), and the real
//! application bound to port 0, built through `Application::build` exactly
//! as `authgate serve` builds it.

// Not every test file uses every helper.
#![allow(dead_code)]

use std::path::Path;

use authgate::clock::Clock;
use authgate::config::Settings;
use authgate::startup::Application;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub address: String,
    /// The test's database on PostgreSQL itself (never through PgBouncer),
    /// for looking at rows and holding locks.
    pub db_url: String,
    pub settings: Settings,
    pub client: reqwest::Client,
    /// The application's clock: tests move it instead of sleeping.
    pub clock: Clock,
}

/// A token pair as the API returns it.
#[derive(Debug, Clone)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
    pub json: Value,
}

impl Pair {
    pub fn from_json(json: Value) -> Pair {
        Pair {
            access: json["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: json["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            session_id: json["session_id"].as_str().expect("session_id").to_owned(),
            json,
        }
    }
}

fn base_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is unset: run the tests through scripts/test.sh")
}

/// The URL of another database on the same server.
fn with_database(url: &str, name: &str) -> String {
    let (head, _) = url.rsplit_once('/').expect("DATABASE_URL has a path");
    format!("{head}/{name}")
}

/// Settings as the test environment loads them (config/test.toml: cheap
/// bcrypt), for the given database, on a free port.
pub fn test_settings(db_url: &str) -> Settings {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let db_url = db_url.to_owned();
    let mut settings = Settings::load_from(&dir, |key| match key {
        "AUTHGATE_ENV" => Some("test".to_owned()),
        "DATABASE_URL" => Some(db_url.clone()),
        _ => None,
    })
    .expect("test settings load");
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = 2;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Creates a fresh database, lets the test adjust the settings, and starts
/// the application on it.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(base_url(), tweak).await
}

/// [`spawn_app_with`] on another PostgreSQL server (`base` is a URL of any
/// database there).
pub async fn spawn_app_on(base: String, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db_url = new_database(base).await;
    let mut settings = test_settings(&db_url);
    tweak(&mut settings);
    start(settings).await
}

/// Creates a fresh, empty database (no migration run) on the server of
/// `base`; returns its URL.
pub async fn new_database(base: String) -> String {
    let name = format!("authgate_test_{}", Uuid::new_v4().simple());
    let db_url = with_database(&base, &name);
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&base).expect("connect to the test server");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create the test database");
    })
    .await
    .unwrap();
    db_url
}

/// The variable through which scripts/test.sh names its PgBouncer.
pub const PGBOUNCER_VAR: &str = "AUTHGATE_TEST_PGBOUNCER_URL";

/// The URL of the PgBouncer (transaction pooling) in front of
/// `DATABASE_URL`'s server. Tests that need it fail without it, in CI and
/// locally alike (saying how to get one): nothing is skipped.
pub fn pgbouncer_url() -> String {
    match std::env::var(PGBOUNCER_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{PGBOUNCER_VAR} is unset{}: run the tests through scripts/test.sh, or start \
             PgBouncer in transaction pooling mode in front of DATABASE_URL's server \
             (`. scripts/pg.sh; . scripts/pgbouncer.sh; pgb_start DIR PORT PG_PORT`) and \
             export {PGBOUNCER_VAR}=postgres://postgres@127.0.0.1:PORT/postgres",
            if std::env::var_os("CI").is_some() {
                " in CI"
            } else {
                ""
            }
        ),
    }
}

/// How the instances of a test reach PostgreSQL (SPEC 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `database.url` is PostgreSQL itself.
    Direct,
    /// `database.url` is PgBouncer in transaction pooling mode, and
    /// `database.listen_url` PostgreSQL itself.
    Pooled,
    /// `database.url` is PgBouncer, and no `database.listen_url`.
    PooledWithoutListenUrl,
}

impl Setup {
    /// A fresh database and the first instance on it, reaching it this way;
    /// more instances start with [`start`] on a clone of its settings.
    pub async fn spawn_with(self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let direct = new_database(base_url()).await;
        let name = direct.rsplit_once('/').unwrap().1.to_owned();
        let mut settings = test_settings(&direct);
        match self {
            Setup::Direct => {}
            Setup::Pooled => {
                settings.database.url = with_database(&pgbouncer_url(), &name);
                settings.database.listen_url = Some(direct);
            }
            Setup::PooledWithoutListenUrl => {
                settings.database.url = with_database(&pgbouncer_url(), &name);
            }
        }
        tweak(&mut settings);
        start(settings).await
    }

    pub async fn spawn(self) -> TestApp {
        self.spawn_with(|_| {}).await
    }
}

/// Runs an `async fn body(setup: Setup)` as two tests, `direct` and
/// `through_pgbouncer`, in a module named after the body: the same test
/// with the instances on PostgreSQL, then behind PgBouncer.
macro_rules! on_both_setups {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn direct() {
                super::$body(crate::helpers::Setup::Direct).await
            }

            #[tokio::test]
            async fn through_pgbouncer() {
                super::$body(crate::helpers::Setup::Pooled).await
            }
        }
    )+};
}

/// The URL of the test's database on PostgreSQL itself: `listen_url` when
/// set, else `url` with PgBouncer's address swapped for the server's.
fn direct_url(database: &authgate::config::DatabaseSettings) -> String {
    if let Some(url) = database
        .listen_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        return url.to_owned();
    }
    if let Ok(pooler) = std::env::var(PGBOUNCER_VAR) {
        let (pooler_head, _) = pooler.rsplit_once('/').expect("a URL with a path");
        if let Some(name) = database.url.strip_prefix(&format!("{pooler_head}/")) {
            return with_database(&base_url(), name);
        }
    }
    database.url.clone()
}

/// The URL of the tests' PostgreSQL server (`DATABASE_URL`).
pub fn test_server_url() -> String {
    base_url()
}

/// Starts the application with these settings (a second instance on the
/// same database, say), on a clock of its own.
pub async fn start(settings: Settings) -> TestApp {
    start_with_clock(settings, Clock::system()).await
}

/// Starts the application on the given clock (another instance's, say).
pub async fn start_with_clock(settings: Settings, clock: Clock) -> TestApp {
    settings
        .validate(Some("test"))
        .expect("valid test settings");
    let app = Application::build_with_clock(settings.clone(), clock.clone())
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        db_url: direct_url(&settings.database),
        settings,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        clock,
    }
}

impl TestApp {
    /// Moves the application's clock forward: tokens expire, grace windows
    /// and session lifetimes end, without waiting.
    pub fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A direct connection to this test's database, for looking at rows.
    pub fn db(&self) -> PgConnection {
        authgate::db::establish(&self.db_url).expect("connect to the test database")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs form-encoded parameters (the OAuth endpoints).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A GET with no credentials.
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A POST with no body and no credentials.
    pub async fn post(&self, path: &str) -> Response {
        self.client.post(self.url(path)).send().await.unwrap()
    }

    /// POSTs a body as is, with the given content type (or none).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.unwrap()
    }

    pub async fn get_with(&self, path: &str, access: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_with(&self, path: &str, access: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    pub async fn signup(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/signup",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Signs a new user up and returns their email.
    pub async fn new_user(&self) -> String {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let response = self.signup(&email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        email
    }

    pub async fn login_ok(&self, email: &str) -> Pair {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login of {email}");
        Pair::from_json(response.json().await.unwrap())
    }

    /// A new user, logged in once.
    pub async fn logged_in(&self) -> (String, Pair) {
        let email = self.new_user().await;
        let pair = self.login_ok(&email).await;
        (email, pair)
    }

    pub async fn me(&self, access: &str) -> Response {
        self.get_with("/auth/me", access).await
    }

    /// Reissue with the refresh token in the body.
    pub async fn reissue(&self, refresh: &str) -> Response {
        self.post_json("/auth/reissue", &json!({ "refresh_token": refresh }))
            .await
    }

    /// Reissue with the refresh token in the body and an access token beside it.
    pub async fn reissue_with_access(&self, refresh: &str, access: &str) -> Response {
        self.client
            .post(self.url("/auth/reissue"))
            .bearer_auth(access)
            .json(&json!({ "refresh_token": refresh }))
            .send()
            .await
            .unwrap()
    }

    pub async fn reissue_ok(&self, refresh: &str) -> Pair {
        let response = self.reissue(refresh).await;
        assert_eq!(response.status(), StatusCode::OK);
        Pair::from_json(response.json().await.unwrap())
    }
}

/// Asserts the status and the spec's error body, and returns the response's
/// headers for further checks.
pub async fn assert_error(
    response: Response,
    status: StatusCode,
    code: &str,
) -> reqwest::header::HeaderMap {
    assert_error_with(response, status, code, "message").await
}

/// [`assert_error`] for a body whose text is in the member `description`
/// (`error_description` under `/oauth/`, RFC 6749 §5.2).
pub async fn assert_error_with(
    response: Response,
    status: StatusCode,
    code: &str,
    description: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(response.status(), status, "status for {code}");
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["error"], code, "body: {body}");
    assert!(
        body[description].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only error and {description}: {body}"
    );
    headers
}

/// Asserts the 401 for a missing or malformed Authorization header: the
/// bare `WWW-Authenticate: Bearer` challenge of RFC 6750 §3.1.
pub async fn assert_bare_challenge(response: Response) {
    let headers = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
}

/// Asserts a 401 with an RFC 6750 `invalid_token` challenge.
pub async fn assert_unauthorized(response: Response, code: &str) {
    let headers = assert_error(response, StatusCode::UNAUTHORIZED, code).await;
    let challenge = headers
        .get("www-authenticate")
        .expect("WWW-Authenticate")
        .to_str()
        .unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
}

/// The payload of a JWT, decoded without verification.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64url_decode(payload)).expect("JSON claims")
}

pub fn base64url_decode(input: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(input).expect("base64url")
}

pub fn base64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
