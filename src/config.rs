//! Typed settings: loading (files, then environment) and validation.
//!
//! Layers, later ones winning: `config/default.toml`, `config/$AUTHGATE_ENV.toml`
//! (when it exists), `DATABASE_URL` (for `database.url` only), then
//! `AUTHGATE__SECTION__KEY` variables. Validation refuses only what the spec
//! names; everything else that is typed right is accepted.

use std::path::{Path, PathBuf};

use chrono::Duration;
use serde::Deserialize;

use crate::tokens::SecretKey;

/// The secret shipped in `config/default.toml`; refused in production.
pub const DEVELOPMENT_SECRET: &str = "authgate-development-secret-do-not-use-in-production";

/// The embedded copy of `config/default.toml`, used when the binary runs
/// outside a checkout (no `config/` folder beside it).
const EMBEDDED_DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub jwt: JwtSettings,
    pub sessions: SessionSettings,
    pub password: PasswordSettings,
    pub sweeper: SweeperSettings,
    pub ratelimit: RateLimitSettings,
    #[serde(default)]
    pub browser: BrowserSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: usize,
    /// Addresses or CIDR blocks of reverse proxies whose `X-Forwarded-For`
    /// is believed (see [`crate::client_ip`]); parsed at start-up.
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub trusted_proxies: Vec<String>,
    /// The URL clients reach this server at, for absolute URLs in the
    /// metadata documents (SPEC 7); unset or empty: `http://` + `bind`.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl ServerSettings {
    /// `server.public_url` without a trailing `/`, or by default `http://`
    /// + `server.bind`, with the port actually bound in place of a `:0`.
    pub fn public_url(&self, bound_port: u16) -> String {
        match self.public_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
            _ => {
                let bind = match self.bind.strip_suffix(":0") {
                    Some(host) => format!("{host}:{bound_port}"),
                    None => self.bind.clone(),
                };
                format!("http://{bind}")
            }
        }
    }
}

/// A list from TOML (an array) or from the environment (one string,
/// comma-separated, as `AUTHGATE__SECTION__KEY` can only carry a string).
fn list_or_comma_separated<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    /// A direct connection (not through a transaction pooler) for the
    /// sessions that `LISTEN`: the revocation feed and the signing-key
    /// reloader. Unset or empty: they use `url`.
    #[serde(default)]
    pub listen_url: Option<String>,
    pub pool_size: u32,
    /// How long a request waits for a pooled connection.
    pub connect_timeout_ms: u64,
    /// Server-side `statement_timeout` of every pooled connection.
    pub statement_timeout_ms: u64,
    /// Server-side `lock_timeout` of every pooled connection.
    pub lock_timeout_ms: u64,
    /// The deadline of a request's whole database work, checkout included.
    pub request_deadline_ms: u64,
}

impl DatabaseSettings {
    /// The URL of the sessions that `LISTEN`: `listen_url`, or `url`.
    pub fn listen_url(&self) -> &str {
        match self.listen_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url,
            _ => &self.url,
        }
    }
}

impl std::fmt::Debug for DatabaseSettings {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &"<redacted>")
            .field(
                "listen_url",
                &self.listen_url.as_ref().map(|_| "<redacted>"),
            )
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("lock_timeout_ms", &self.lock_timeout_ms)
            .field("request_deadline_ms", &self.request_deadline_ms)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwtSettings {
    /// The HS256 key; in the asymmetric modes, the key under which the
    /// private signing keys are encrypted at rest.
    pub secret: SecretKey,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// `HS256`, `EdDSA` or `RS256` (SPEC 7.1); checked by
    /// [`Settings::validate`], read through [`JwtSettings::algorithm`].
    pub algorithm: String,
    /// Asymmetric modes: a new signing key every this many seconds; 0 = never
    /// by itself (only `authgate keys rotate`).
    pub key_rotation_secs: u64,
    /// Asymmetric modes: how long a new key is in the JWKS before it signs.
    pub key_publish_ahead_secs: u64,
}

impl JwtSettings {
    /// The configured algorithm. Settings that passed [`Settings::validate`]
    /// always name one; anything else reads as HS256.
    pub fn algorithm(&self) -> SigningAlgorithm {
        SigningAlgorithm::parse(&self.algorithm).unwrap_or(SigningAlgorithm::Hs256)
    }

    /// How often a new signing key is made; `None` = never by itself.
    pub fn key_rotation(&self) -> Option<Duration> {
        (self.key_rotation_secs > 0).then(|| duration(self.key_rotation_secs))
    }

    pub fn key_publish_ahead(&self) -> Duration {
        duration(self.key_publish_ahead_secs)
    }
}

/// How tokens are signed (`jwt.algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// `jwt.secret` signs and verifies.
    Hs256,
    /// Ed25519 keys kept in the `signing_keys` table.
    EdDsa,
    /// RSA 2048 keys (RSASSA-PKCS1-v1_5 with SHA-256) in `signing_keys`.
    Rs256,
}

impl SigningAlgorithm {
    /// Reads a `jwt.algorithm` value: the JOSE name, in any case.
    pub fn parse(value: &str) -> Option<SigningAlgorithm> {
        [
            SigningAlgorithm::Hs256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Rs256,
        ]
        .into_iter()
        .find(|alg| alg.name().eq_ignore_ascii_case(value.trim()))
    }

    /// The JOSE name, as in a token's `alg` header and the JWKS.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Hs256 => "HS256",
            SigningAlgorithm::EdDsa => "EdDSA",
            SigningAlgorithm::Rs256 => "RS256",
        }
    }

    pub fn is_asymmetric(self) -> bool {
        self != SigningAlgorithm::Hs256
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    pub reuse_grace_secs: u64,
    pub max_lifetime_secs: u64,
    pub max_per_user: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PasswordSettings {
    pub bcrypt_cost: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SweeperSettings {
    pub schedule: String,
    pub batch_size: u32,
    pub revoked_retention_secs: u64,
    /// Pause between two batches, in milliseconds: throttles the pass's
    /// CPU and WAL so that requests beside it keep their latency.
    pub batch_pause_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub login_failures_per_email: u32,
    pub login_failures_per_ip: u32,
    pub window_secs: u64,
}

impl RateLimitSettings {
    /// The window as a duration, capped like every other setting.
    pub fn window(&self) -> Duration {
        duration(self.window_secs)
    }
}

/// Browser clients (SPEC 8): who may call with credentials, and the
/// refresh cookie's `Secure` attribute.
#[derive(Debug, Clone, Deserialize)]
pub struct BrowserSettings {
    /// Origins (`https://app.example.com`) allowed to call the API with
    /// credentials from a browser: CORS, and cookie-mode requests.
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub allowed_origins: Vec<String>,
    /// Off only for plain-http development.
    #[serde(default = "yes")]
    pub cookie_secure: bool,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        BrowserSettings {
            allowed_origins: Vec::new(),
            cookie_secure: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// The lifetimes and limits of sessions and their tokens, typed once here so
/// that no other module converts seconds or guards against overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Zero disables the grace window.
    pub reuse_grace: Duration,
    pub max_lifetime: Duration,
    /// 0 = unlimited.
    pub max_per_user: u32,
}

/// Longest duration a setting can mean (100 years): larger values are taken
/// as this, so that no timestamp arithmetic can overflow.
pub const LONGEST: Duration = Duration::seconds(100 * 365 * 24 * 3600);

fn duration(secs: u64) -> Duration {
    i64::try_from(secs)
        .ok()
        .filter(|s| *s < LONGEST.num_seconds())
        .map_or(LONGEST, Duration::seconds)
}

/// Why start-up refused the configuration: one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("database.url is empty: set DATABASE_URL or AUTHGATE__DATABASE__URL")]
    MissingDatabaseUrl,
    #[error("jwt.secret is {0} bytes long; it must be at least 32 bytes")]
    ShortSecret(usize),
    #[error("jwt.secret is the development default; set AUTHGATE__JWT__SECRET when AUTHGATE_ENV=production")]
    DevelopmentSecretInProduction,
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    #[error("password.bcrypt_cost is {0}; it must be between 4 and 31")]
    BcryptCost(u32),
    #[error("jwt.algorithm is {0:?}; it must be HS256, EdDSA or RS256")]
    UnknownAlgorithm(String),
}

impl Settings {
    /// Loads settings from `./config` (or `AUTHGATE_CONFIG_DIR`) and the
    /// process environment, and validates them.
    pub fn load() -> Result<Settings, ConfigError> {
        let dir = std::env::var_os("AUTHGATE_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let env = |key: &str| std::env::var(key).ok();
        let settings = Self::load_from(&dir, env)?;
        settings.validate(env("AUTHGATE_ENV").as_deref())?;
        Ok(settings)
    }

    /// Loads without validating, with the environment given as a function so
    /// that tests need not touch the process environment.
    pub fn load_from(
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        let default_file = dir.join("default.toml");
        builder = if default_file.exists() {
            builder.add_source(config::File::from(default_file))
        } else {
            builder.add_source(config::File::from_str(
                EMBEDDED_DEFAULTS,
                config::FileFormat::Toml,
            ))
        };
        if let Some(name) = env("AUTHGATE_ENV").filter(|n| !n.is_empty()) {
            builder = builder.add_source(config::File::from(dir.join(name)).required(false));
        }
        if let Some(url) = env("DATABASE_URL").filter(|u| !u.is_empty()) {
            builder = builder.set_override("database.url", url)?;
        }
        // AUTHGATE__SECTION__KEY; set last so it beats DATABASE_URL too.
        for (section, key) in KNOWN_KEYS {
            let var = format!(
                "AUTHGATE__{}__{}",
                section.to_uppercase(),
                key.to_uppercase()
            );
            if let Some(value) = env(&var) {
                builder = builder.set_override(format!("{section}.{key}"), value)?;
            }
        }
        Ok(builder.build()?.try_deserialize()?)
    }

    /// Refuses what the spec names: a missing database URL, a short secret,
    /// the development secret in production, and values that cannot work.
    pub fn validate(&self, environment: Option<&str>) -> Result<(), ConfigError> {
        if self.database.url.trim().is_empty() {
            return Err(ConfigError::MissingDatabaseUrl);
        }
        let secret = self.jwt.secret.expose();
        if secret.len() < 32 {
            return Err(ConfigError::ShortSecret(secret.len()));
        }
        if environment == Some("production") && secret == DEVELOPMENT_SECRET.as_bytes() {
            return Err(ConfigError::DevelopmentSecretInProduction);
        }
        for (name, value) in [
            ("jwt.access_ttl_secs", self.jwt.access_ttl_secs),
            ("jwt.refresh_ttl_secs", self.jwt.refresh_ttl_secs),
            (
                "sessions.max_lifetime_secs",
                self.sessions.max_lifetime_secs,
            ),
            ("ratelimit.window_secs", self.ratelimit.window_secs),
            ("database.pool_size", u64::from(self.database.pool_size)),
            (
                "database.request_deadline_ms",
                self.database.request_deadline_ms,
            ),
            ("sweeper.batch_size", u64::from(self.sweeper.batch_size)),
        ] {
            if value == 0 {
                return Err(ConfigError::NotPositive(name));
            }
        }
        if !(4..=31).contains(&self.password.bcrypt_cost) {
            return Err(ConfigError::BcryptCost(self.password.bcrypt_cost));
        }
        if SigningAlgorithm::parse(&self.jwt.algorithm).is_none() {
            return Err(ConfigError::UnknownAlgorithm(self.jwt.algorithm.clone()));
        }
        Ok(())
    }

    /// The session rules as typed durations.
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            access_ttl: duration(self.jwt.access_ttl_secs),
            refresh_ttl: duration(self.jwt.refresh_ttl_secs),
            reuse_grace: duration(self.sessions.reuse_grace_secs),
            max_lifetime: duration(self.sessions.max_lifetime_secs),
            max_per_user: self.sessions.max_per_user,
        }
    }
}

/// Every key of the spec's table (plus the few of our own), for the
/// `AUTHGATE__SECTION__KEY` overrides. Listing them, rather than letting the
/// config crate split variable names on `__`, keeps keys that contain a
/// single underscore (`access_ttl_secs`) intact.
const KNOWN_KEYS: &[(&str, &str)] = &[
    ("server", "bind"),
    ("server", "workers"),
    ("server", "trusted_proxies"),
    ("server", "public_url"),
    ("database", "url"),
    ("database", "listen_url"),
    ("database", "pool_size"),
    ("database", "connect_timeout_ms"),
    ("database", "statement_timeout_ms"),
    ("database", "lock_timeout_ms"),
    ("database", "request_deadline_ms"),
    ("jwt", "secret"),
    ("jwt", "issuer"),
    ("jwt", "audience"),
    ("jwt", "access_ttl_secs"),
    ("jwt", "refresh_ttl_secs"),
    ("jwt", "algorithm"),
    ("jwt", "key_rotation_secs"),
    ("jwt", "key_publish_ahead_secs"),
    ("sessions", "reuse_grace_secs"),
    ("sessions", "max_lifetime_secs"),
    ("sessions", "max_per_user"),
    ("password", "bcrypt_cost"),
    ("sweeper", "schedule"),
    ("sweeper", "batch_size"),
    ("sweeper", "revoked_retention_secs"),
    ("sweeper", "batch_pause_ms"),
    ("ratelimit", "login_failures_per_email"),
    ("ratelimit", "login_failures_per_ip"),
    ("ratelimit", "window_secs"),
    ("browser", "allowed_origins"),
    ("browser", "cookie_secure"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
}
