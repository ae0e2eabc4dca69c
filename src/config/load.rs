//! Reading the settings: the layers of files and environment variables
//! named at the top of `crate::config`.

use std::path::{Path, PathBuf};

use super::{ConfigError, Settings};

/// The embedded copy of `config/default.toml`, used when the binary runs
/// outside a checkout (no `config/` folder beside it).
pub(super) const EMBEDDED_DEFAULTS: &str = include_str!("../../config/default.toml");

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
