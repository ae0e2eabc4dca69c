//! Signing keys and the JWKS (SPEC 7.1): EdDSA and RS256 tokens name their
//! key and verify with the JWKS alone; keys are published ahead, sign, and
//! retire; `authgate keys rotate|list`; what is refused; encryption at rest.

use std::process::{Command, Output};
use std::time::Duration;

use authgate::config::Settings;
use authgate::signing_keys::{Sealer, StoredKey, RETIRE_MARGIN};
use authgate::tokens::SecretKey;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_unauthorized, base64url_decode, base64url_encode, claims_of, spawn_app, spawn_app_with,
    start, TestApp,
};

/// An app in the given mode; `ahead` is `jwt.key_publish_ahead_secs`.
async fn app_in(alg: &str, ahead: u64, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let alg = alg.to_owned();
    spawn_app_with(move |s| {
        s.jwt.algorithm = alg;
        s.jwt.key_publish_ahead_secs = ahead;
        tweak(s);
    })
    .await
}

/// Runs `authgate` against this test's database with the app's key settings
/// (the subprocess reads only the files and the environment). It uses the
/// real clock, never the app's.
pub fn authgate_keys(app: &TestApp, args: &[&str]) -> Output {
    let jwt = &app.settings.jwt;
    Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AUTHGATE__DATABASE__URL")
        .env("DATABASE_URL", &app.db_url)
        .env("AUTHGATE_ENV", "test")
        .env("AUTHGATE__JWT__ALGORITHM", &jwt.algorithm)
        .env(
            "AUTHGATE__JWT__KEY_PUBLISH_AHEAD_SECS",
            jwt.key_publish_ahead_secs.to_string(),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("run authgate")
}

/// `authgate keys rotate`: the one line it prints, the new kid.
fn rotate(app: &TestApp) -> String {
    let output = authgate_keys(app, &["keys", "rotate"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    stdout.trim().to_owned()
}

fn header_of(token: &str) -> Value {
    let head = token.split('.').next().expect("a JWT");
    serde_json::from_slice(&base64url_decode(head)).expect("a JSON header")
}

fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().expect("a kid").to_owned()
}

async fn jwks(app: &TestApp) -> Value {
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (up to 5 s) until the JWKS does or does not list `kid`: other
/// instances learn of a new key by a notification.
async fn until_published(app: &TestApp, kid: &str, published: bool) {
    for _ in 0..100 {
        if kids(&jwks(app).await).iter().any(|k| k == kid) == published {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{kid} never became published={published}");
}

/// Verifies an access token as a resource server would: with the JWK of the
/// JWKS that its kid names, and nothing else of ours.
async fn verify_with_jwks(app: &TestApp, token: &str) -> Value {
    let header = header_of(token);
    let set = jwks(app).await;
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is in the JWKS");
    let jwk: Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let alg: Algorithm = serde_json::from_value(header["alg"].clone()).unwrap();
    let mut validation = Validation::new(alg);
    validation.set_audience(&[&app.settings.jwt.audience]);
    validation.set_issuer(&[&app.settings.jwt.issuer]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
        .expect("verifies with the JWKS alone")
        .claims
}

#[tokio::test]
async fn the_jwks_in_hs256_mode_is_an_empty_set_that_may_be_cached() {
    let app = spawn_app().await;

    let response = app.get("/.well-known/jwks.json").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "keys": [] })
    );
    let response = app.post("/.well-known/jwks.json").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
}

async fn tokens_name_their_key_and_verify_with_the_jwks_alone(alg: &str) {
    let app = app_in(alg, 3600, |_| {}).await;
    let (email, pair) = app.logged_in().await;

    let set = jwks(&app).await;

    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{set}");
    let key = &keys[0];
    assert_eq!(key["alg"], alg);
    assert_eq!(key["use"], "sig");
    match alg {
        "EdDSA" => {
            assert_eq!(key["kty"], "OKP");
            assert_eq!(key["crv"], "Ed25519");
            assert_eq!(base64url_decode(key["x"].as_str().unwrap()).len(), 32);
        }
        _ => {
            assert_eq!(key["kty"], "RSA");
            assert_eq!(key["e"], "AQAB");
            assert_eq!(base64url_decode(key["n"].as_str().unwrap()).len(), 256);
        }
    }
    assert!(key.get("d").is_none(), "no private member: {key}");
    for token in [&pair.access, &pair.refresh] {
        assert_eq!(header_of(token)["alg"], alg);
        assert_eq!(kid_of(token), key["kid"].as_str().unwrap());
    }
    let claims = verify_with_jwks(&app, &pair.access).await;
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(claims["typ"], "access");
    assert_eq!(app.me(&pair.access).await.status(), StatusCode::OK);
    let reissued = app.reissue_ok(&pair.refresh).await;
    assert_eq!(kid_of(&reissued.refresh), key["kid"].as_str().unwrap());
}

#[tokio::test]
async fn eddsa_tokens_name_their_key_and_verify_with_the_jwks_alone() {
    tokens_name_their_key_and_verify_with_the_jwks_alone("EdDSA").await;
}

#[tokio::test]
async fn rs256_tokens_name_their_key_and_verify_with_the_jwks_alone() {
    tokens_name_their_key_and_verify_with_the_jwks_alone("RS256").await;
}

#[tokio::test]
async fn keys_rotate_publishes_a_key_at_once_that_signs_only_after_the_publish_ahead() {
    let app = app_in("EdDSA", 60, |_| {}).await;
    let (email, before) = app.logged_in().await;
    let first = kid_of(&before.access);

    let kid = rotate(&app);

    assert_ne!(kid, first);
    until_published(&app, &kid, true).await;
    assert_eq!(kids(&jwks(&app).await), [kid.clone(), first.clone()]);
    let still_old = app.login_ok(&email).await;
    assert_eq!(
        kid_of(&still_old.access),
        first,
        "published ahead, not signing"
    );
    app.advance(Duration::from_secs(61));
    let after = app.login_ok(&email).await;
    assert_eq!(kid_of(&after.access), kid);
    verify_with_jwks(&app, &after.access).await;
    // Tokens of the old key are still good while they live.
    assert_eq!(app.me(&before.access).await.status(), StatusCode::OK);
    verify_with_jwks(&app, &before.access).await;
    assert_eq!(app.reissue(&before.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn rs256_keys_rotate_too() {
    let app = app_in("RS256", 0, |_| {}).await;
    let (email, before) = app.logged_in().await;

    let kid = rotate(&app);

    until_published(&app, &kid, true).await;
    let after = app.login_ok(&email).await;
    assert_eq!(kid_of(&after.access), kid);
    assert_ne!(kid_of(&before.access), kid);
    verify_with_jwks(&app, &after.access).await;
    assert_eq!(app.me(&before.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn keys_list_prints_each_key_on_one_line() {
    let app = app_in("EdDSA", 60, |_| {}).await;
    let first = kid_of(&app.logged_in().await.1.access);
    let second = rotate(&app);

    let output = authgate_keys(&app, &["keys", "list"]);

    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let [old, new] = [&lines[0], &lines[1]];
    assert_eq!(old[..2], [first.as_str(), "EdDSA"], "{stdout}");
    assert_eq!(new[..2], [second.as_str(), "EdDSA"], "{stdout}");
    // The old key signs until the new one takes over, 60 s after it was made.
    assert_eq!(old[3], new[2], "{stdout}");
    assert_eq!(new[3], "-", "{stdout}");
    let from = chrono::DateTime::parse_from_rfc3339(new[2]).unwrap();
    let ahead = from.signed_duration_since(chrono::Utc::now());
    assert!(ahead > chrono::Duration::seconds(50), "{stdout}");
    for line in &lines {
        assert_eq!(line.len(), 4, "{stdout}");
    }
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks_once_every_token_it_signed_has_expired() {
    let app = app_in("EdDSA", 10, |s| {
        s.jwt.access_ttl_secs = 60;
        s.jwt.refresh_ttl_secs = 120;
    })
    .await;
    let (_, old_pair) = app.logged_in().await;
    let old = kid_of(&old_pair.access);
    let new = rotate(&app);
    until_published(&app, &new, true).await;
    app.advance(Duration::from_secs(11));
    // The old key's last tokens live 120 s more; a margin covers instances
    // that had not reloaded yet.
    let retire = 120 + RETIRE_MARGIN.num_seconds() as u64;

    app.advance(Duration::from_secs(retire - 5));
    assert!(kids(&jwks(&app).await).contains(&old));
    app.advance(Duration::from_secs(6));

    assert_eq!(kids(&jwks(&app).await), [new]);
    assert_unauthorized(app.reissue(&old_pair.refresh).await, "invalid_token").await;
}

/// A token for this app's session, signed as the caller likes.
fn forged(pair_access: &str, header: &Header, key: &EncodingKey) -> String {
    let claims = claims_of(pair_access);
    jsonwebtoken::encode(header, &claims, key).unwrap()
}

#[tokio::test]
async fn a_token_whose_kid_is_not_published_is_refused() {
    let app = app_in("EdDSA", 3600, |_| {}).await;
    let (_, pair) = app.logged_in().await;
    let stranger =
        authgate::signing_keys::generate(authgate::config::SigningAlgorithm::EdDsa).unwrap();
    let key = EncodingKey::from_ed_der(stranger.private_der.expose());

    for kid in [Some(stranger.kid.clone()), Some(kid_of(&pair.access)), None] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.clone();
        let token = forged(&pair.access, &header, &key);
        assert_unauthorized(app.me(&token).await, "invalid_token").await;
    }
    assert_eq!(app.me(&pair.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_header_alg_other_than_its_keys_is_refused() {
    let app = app_in("EdDSA", 3600, |_| {}).await;
    let (_, pair) = app.logged_in().await;
    let (_, rest) = pair.access.split_once('.').unwrap();
    let kid = kid_of(&pair.access);

    for alg in ["RS256", "HS256", "none", "EdDSA "] {
        let header = json!({ "alg": alg, "kid": kid, "typ": "JWT" }).to_string();
        let token = format!("{}.{rest}", base64url_encode(header.as_bytes()));
        assert_unauthorized(app.me(&token).await, "invalid_token").await;
    }
    // HS256 keyed with the published key: the classic confusion.
    let x = jwks(&app).await["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid);
    for secret in [x.as_bytes(), app.settings.jwt.secret.expose()] {
        let token = forged(&pair.access, &header, &EncodingKey::from_secret(secret));
        assert_unauthorized(app.me(&token).await, "invalid_token").await;
    }
}

#[tokio::test]
async fn switching_the_algorithm_ends_the_tokens_signed_the_old_way() {
    let hs = spawn_app().await;
    let email = hs.new_user().await;
    let hs_pair = hs.login_ok(&email).await;
    let mut settings = hs.settings.clone();
    settings.jwt.algorithm = "EdDSA".into();
    let ed = start(settings.clone()).await;
    let ed_pair = ed.login_ok(&email).await;
    settings.jwt.algorithm = "RS256".into();
    let rs = start(settings).await;

    assert_unauthorized(ed.me(&hs_pair.access).await, "invalid_token").await;
    assert_unauthorized(ed.reissue(&hs_pair.refresh).await, "invalid_token").await;
    assert_unauthorized(hs.me(&ed_pair.access).await, "invalid_token").await;
    assert_unauthorized(rs.me(&ed_pair.access).await, "invalid_token").await;
    assert_eq!(ed.me(&ed_pair.access).await.status(), StatusCode::OK);
    assert_eq!(jwks(&hs).await, json!({ "keys": [] }));
    assert_eq!(jwks(&rs).await["keys"][0]["kty"], "RSA");
}

#[tokio::test]
async fn private_keys_are_stored_encrypted_under_a_key_derived_from_the_secret() {
    let app = app_in("EdDSA", 3600, |_| {}).await;
    let mut conn = app.db();

    let rows = StoredKey::all(&mut conn).unwrap();

    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let alg = authgate::config::SigningAlgorithm::EdDsa;
    let der = Sealer::new(&app.settings.jwt.secret)
        .open(&row.kid, alg, &row.sealed())
        .expect("our secret opens it");
    assert!(!row
        .private_key
        .windows(der.expose().len())
        .any(|w| w == der.expose()));
    assert!(!row
        .private_key
        .windows(32)
        .any(|w| w == &der.expose()[16..48]));
    let other = Sealer::new(&SecretKey::new("another-secret-of-at-least-32-bytes!"));
    assert!(other.open(&row.kid, alg, &row.sealed()).is_err());
    assert!(Sealer::new(&app.settings.jwt.secret)
        .open("another-kid", alg, &row.sealed())
        .is_err());
    // The clear private key is the JWKS key's private half.
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(der.expose()).unwrap();
    let x = jwks(&app).await["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(base64url_decode(&x), key.verifying_key().as_bytes());
}

#[tokio::test]
async fn an_instance_with_another_secret_cannot_sign_with_the_stored_keys() {
    let app = app_in("EdDSA", 3600, |_| {}).await;
    let (email, pair) = app.logged_in().await;
    let mut settings = app.settings.clone();
    settings.jwt.secret = SecretKey::new("another-secret-of-at-least-32-bytes!");

    let other = start(settings).await;

    // It made a key of its own, which the first instance does not trust.
    let theirs = other.login_ok(&email).await;
    assert_ne!(kid_of(&theirs.access), kid_of(&pair.access));
    assert_unauthorized(other.me(&pair.access).await, "invalid_token").await;
    assert_unauthorized(app.me(&theirs.access).await, "invalid_token").await;
}
