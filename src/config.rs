//! Typed settings and their validation; `load` reads them (files, then
//! environment).
//!
//! Layers, later ones winning: `config/default.toml`, `config/$AUTHGATE_ENV.toml`
//! (when it exists), `DATABASE_URL` (for `database.url` only), then
//! `AUTHGATE__SECTION__KEY` variables. Validation refuses only what the spec
//! names; everything else that is typed right is accepted.

use chrono::Duration;
use serde::Deserialize;

use crate::tokens::SecretKey;

mod load;

/// The secret shipped in `config/default.toml`; refused in production.
pub const DEVELOPMENT_SECRET: &str = "authgate-development-secret-do-not-use-in-production";

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

#[cfg(test)]
mod tests;
