use super::load::EMBEDDED_DEFAULTS;
use super::*;
use std::collections::HashMap;
use std::path::Path;

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let settings = Settings::load_from(&dir, |k| vars.get(k).cloned())?;
    settings.validate(vars.get("AUTHGATE_ENV").map(String::as_str))?;
    Ok(settings)
}

#[test]
fn defaults_match_the_spec() {
    let s = load(&[("DATABASE_URL", "postgres://x/y")]).unwrap();
    assert_eq!(s.server.bind, "127.0.0.1:8080");
    assert_eq!(s.jwt.access_ttl_secs, 900);
    assert_eq!(s.jwt.refresh_ttl_secs, 1_209_600);
    assert_eq!(s.password.bcrypt_cost, 12);
    assert_eq!(s.ratelimit.login_failures_per_email, 10);
    assert_eq!(s.ratelimit.login_failures_per_ip, 100);
    assert_eq!(s.ratelimit.window_secs, 900);
    assert_eq!(s.sessions.max_per_user, 0);
    assert_eq!(s.jwt.algorithm(), SigningAlgorithm::Hs256);
    assert_eq!(s.jwt.key_rotation_secs, 2_592_000);
    assert_eq!(s.jwt.key_publish_ahead_secs, 3600);
}

#[test]
fn the_signing_algorithm_is_read_in_any_case_and_an_unknown_one_is_refused() {
    for (value, expected) in [
        ("EdDSA", SigningAlgorithm::EdDsa),
        ("eddsa", SigningAlgorithm::EdDsa),
        ("RS256", SigningAlgorithm::Rs256),
        ("hs256", SigningAlgorithm::Hs256),
    ] {
        let s = load(&[
            ("DATABASE_URL", "postgres://a/b"),
            ("AUTHGATE__JWT__ALGORITHM", value),
        ])
        .unwrap();
        assert_eq!(s.jwt.algorithm(), expected, "{value}");
    }
    let err = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__JWT__ALGORITHM", "ES256"),
    ])
    .unwrap_err();
    assert!(matches!(err, ConfigError::UnknownAlgorithm(_)));
    assert!(err.to_string().contains("EdDSA"), "{err}");
}

#[test]
fn key_rotation_zero_means_never() {
    let s = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__JWT__KEY_ROTATION_SECS", "0"),
        ("AUTHGATE__JWT__KEY_PUBLISH_AHEAD_SECS", "0"),
    ])
    .unwrap();
    assert_eq!(s.jwt.key_rotation(), None);
    assert_eq!(s.jwt.key_publish_ahead(), Duration::zero());
}

#[test]
fn database_url_overrides_the_files_and_authgate_variable_overrides_both() {
    let s = load(&[("DATABASE_URL", "postgres://a/b")]).unwrap();
    assert_eq!(s.database.url, "postgres://a/b");
    let s = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__DATABASE__URL", "postgres://c/d"),
    ])
    .unwrap();
    assert_eq!(s.database.url, "postgres://c/d");
}

#[test]
fn listen_url_comes_from_its_variable_and_defaults_to_the_database_url() {
    let s = load(&[("DATABASE_URL", "postgres://pooler/b")]).unwrap();
    assert_eq!(s.database.listen_url(), "postgres://pooler/b");
    let s = load(&[
        ("DATABASE_URL", "postgres://pooler/b"),
        ("AUTHGATE__DATABASE__LISTEN_URL", "postgres://direct/b"),
    ])
    .unwrap();
    assert_eq!(s.database.url, "postgres://pooler/b");
    assert_eq!(s.database.listen_url(), "postgres://direct/b");
    let s = load(&[
        ("DATABASE_URL", "postgres://pooler/b"),
        ("AUTHGATE__DATABASE__LISTEN_URL", " "),
    ])
    .unwrap();
    assert_eq!(s.database.listen_url(), "postgres://pooler/b");
    assert!(!format!("{:?}", s.database).contains("pooler"));
}

#[test]
fn environment_variables_reach_keys_with_underscores() {
    let s = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__JWT__ACCESS_TTL_SECS", "5"),
        ("AUTHGATE__SESSIONS__MAX_PER_USER", "1"),
    ])
    .unwrap();
    assert_eq!(s.jwt.access_ttl_secs, 5);
    assert_eq!(s.sessions.max_per_user, 1);
}

#[test]
fn environment_file_is_layered_over_defaults() {
    let s = load(&[("DATABASE_URL", "postgres://a/b"), ("AUTHGATE_ENV", "test")]).unwrap();
    assert_eq!(s.password.bcrypt_cost, 4);
}

#[test]
fn a_missing_database_url_is_refused() {
    assert!(matches!(load(&[]), Err(ConfigError::MissingDatabaseUrl)));
}

#[test]
fn a_secret_under_32_bytes_is_refused() {
    let err = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__JWT__SECRET", "0123456789012345678901234567890"),
    ])
    .unwrap_err();
    assert!(matches!(err, ConfigError::ShortSecret(31)));
    assert!(load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__JWT__SECRET", "01234567890123456789012345678901"),
    ])
    .is_ok());
}

#[test]
fn the_development_secret_is_refused_only_in_production() {
    let err = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE_ENV", "production"),
    ])
    .unwrap_err();
    assert!(matches!(err, ConfigError::DevelopmentSecretInProduction));
    assert!(load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE_ENV", "production"),
        (
            "AUTHGATE__JWT__SECRET",
            "a-production-secret-of-at-least-32-bytes"
        ),
    ])
    .is_ok());
}

#[test]
fn an_access_ttl_above_the_refresh_ttl_is_accepted() {
    let s = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__JWT__ACCESS_TTL_SECS", "3600"),
        ("AUTHGATE__JWT__REFRESH_TTL_SECS", "60"),
    ])
    .unwrap();
    assert_eq!(s.jwt.refresh_ttl_secs, 60);
}

#[test]
fn the_session_policy_is_typed_and_capped() {
    let s = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__SESSIONS__REUSE_GRACE_SECS", "10"),
        ("AUTHGATE__JWT__REFRESH_TTL_SECS", &u64::MAX.to_string()),
    ])
    .unwrap();
    let policy = s.session_policy();
    assert_eq!(policy.access_ttl, Duration::seconds(900));
    assert_eq!(policy.reuse_grace, Duration::seconds(10));
    assert_eq!(policy.refresh_ttl, LONGEST);
    assert_eq!(policy.max_lifetime, Duration::seconds(2_592_000));
}

#[test]
fn bcrypt_cost_outside_4_to_31_is_refused() {
    for (cost, ok) in [("3", false), ("4", true), ("31", true), ("32", false)] {
        let r = load(&[
            ("DATABASE_URL", "postgres://a/b"),
            ("AUTHGATE__PASSWORD__BCRYPT_COST", cost),
        ]);
        assert_eq!(r.is_ok(), ok, "cost {cost}");
    }
}

#[test]
fn browser_origins_are_a_comma_separated_list_in_the_environment_and_cookies_secure() {
    let s = load(&[("DATABASE_URL", "postgres://a/b")]).unwrap();
    assert!(s.browser.allowed_origins.is_empty());
    assert!(s.browser.cookie_secure);
    let s = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        (
            "AUTHGATE__BROWSER__ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:3000",
        ),
        ("AUTHGATE__BROWSER__COOKIE_SECURE", "false"),
    ])
    .unwrap();
    assert_eq!(
        s.browser.allowed_origins,
        ["https://app.example.com", "http://localhost:3000"]
    );
    assert!(!s.browser.cookie_secure);
}

#[test]
fn trusted_proxies_are_empty_by_default_and_a_comma_separated_list_in_the_environment() {
    let s = load(&[("DATABASE_URL", "postgres://a/b")]).unwrap();
    assert!(s.server.trusted_proxies.is_empty());
    let s = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        (
            "AUTHGATE__SERVER__TRUSTED_PROXIES",
            "127.0.0.1/32, ::1/128,",
        ),
    ])
    .unwrap();
    assert_eq!(s.server.trusted_proxies, ["127.0.0.1/32", "::1/128"]);
}

#[test]
fn public_url_defaults_to_http_and_the_bound_address_and_loses_a_trailing_slash() {
    let s = load(&[("DATABASE_URL", "postgres://a/b")]).unwrap();
    assert_eq!(s.server.public_url(8080), "http://127.0.0.1:8080");
    let mut any_port = s.server.clone();
    any_port.bind = "127.0.0.1:0".into();
    assert_eq!(any_port.public_url(4321), "http://127.0.0.1:4321");
    for set in ["https://auth.example.com/", "https://auth.example.com"] {
        let s = load(&[
            ("DATABASE_URL", "postgres://a/b"),
            ("AUTHGATE__SERVER__PUBLIC_URL", set),
        ])
        .unwrap();
        assert_eq!(s.server.public_url(8080), "https://auth.example.com");
    }
    let s = load(&[
        ("DATABASE_URL", "postgres://a/b"),
        ("AUTHGATE__SERVER__PUBLIC_URL", ""),
    ])
    .unwrap();
    assert_eq!(s.server.public_url(8080), "http://127.0.0.1:8080");
}

#[test]
fn trusted_proxies_are_an_array_in_toml() {
    let dir = std::env::temp_dir().join(format!("authgate-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("default.toml"), EMBEDDED_DEFAULTS).unwrap();
    std::fs::write(
        dir.join("proxied.toml"),
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\n",
    )
    .unwrap();
    let env = |key: &str| match key {
        "DATABASE_URL" => Some("postgres://a/b".to_owned()),
        "AUTHGATE_ENV" => Some("proxied".to_owned()),
        _ => None,
    };
    let loaded = Settings::load_from(&dir, env);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        loaded.unwrap().server.trusted_proxies,
        ["10.0.0.0/8", "192.0.2.1"]
    );
}

#[test]
fn secrets_do_not_appear_in_debug_output() {
    let s = load(&[
        ("DATABASE_URL", "postgres://user:hunter2@a/b"),
        (
            "AUTHGATE__JWT__SECRET",
            "a-production-secret-of-at-least-32-bytes",
        ),
    ])
    .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2"));
    assert!(!shown.contains("a-production-secret"));
}
