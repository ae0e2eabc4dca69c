//! `GET /metrics`: Prometheus text, through the `prometheus` crate. Sweeper
//! totals come from this process's passes; the refresh-token gauges are
//! computed cheaply and cached.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use prometheus::{
    Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::sweeper::PassOutcome;

/// How long a computed set of gauges is served before it is computed again.
const GAUGES_MAX_AGE: Duration = Duration::from_secs(15);
/// Counting stops here: past it the gauge says "at least this many" (or, for
/// the total, the planner's estimate) rather than walk tens of millions of
/// index entries per scrape.
const COUNT_CAP: i64 = 100_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub live: i64,
    pub expired: i64,
    pub revoked: i64,
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    expired: i64,
    #[diesel(sql_type = BigInt)]
    revoked: i64,
}

/// Expired and revoked rows are counted through their indexes, each capped
/// at [`COUNT_CAP`]; so is the total, which past the cap is the planner's
/// estimate (`pg_class.reltuples`). Live = total − expired − revoked.
pub fn count_tokens(conn: &mut PgConnection) -> QueryResult<TokenCounts> {
    let counts: Counts = diesel::sql_query(
        "SELECT
           (SELECT CASE WHEN n.small < $1 THEN n.small
                        ELSE greatest(n.small, c.reltuples::bigint) END
              FROM pg_class c,
                   (SELECT count(*) AS small FROM (SELECT 1 FROM refresh_tokens LIMIT $1) t) n
             WHERE c.oid = 'refresh_tokens'::regclass) AS total,
           (SELECT count(*) FROM (SELECT 1 FROM refresh_tokens
                                   WHERE expires_at <= now() LIMIT $1) t) AS expired,
           (SELECT count(*) FROM (SELECT 1 FROM refresh_tokens
                                   WHERE revoked_at IS NOT NULL AND expires_at > now() LIMIT $1) t) AS revoked",
    )
    .bind::<BigInt, _>(COUNT_CAP)
    .get_result(conn)?;
    Ok(TokenCounts {
        live: (counts.total - counts.expired - counts.revoked).max(0),
        expired: counts.expired,
        revoked: counts.revoked,
    })
}

/// The last computed gauges and when they were computed.
#[derive(Default)]
pub struct GaugeCache(Mutex<Option<(Instant, TokenCounts)>>);

impl GaugeCache {
    pub fn fresh(&self) -> Option<TokenCounts> {
        let cached = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .filter(|(at, _)| at.elapsed() < GAUGES_MAX_AGE)
            .map(|(_, c)| c)
    }

    pub fn store(&self, counts: TokenCounts) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), counts));
    }
}

/// This instance's metrics, in a registry of its own (several applications
/// may share one process, as in the tests). Names are those of the README.
pub struct Metrics {
    registry: Registry,
    /// Gathered only when the database answered: a stale gauge is worse
    /// than none.
    token_registry: Registry,
    swept_rows: IntCounterVec,
    swept_sessions: IntCounter,
    passes: IntCounterVec,
    last_pass_duration: Gauge,
    last_pass_timestamp: IntGauge,
    refresh_tokens: IntGaugeVec,
    revoked_cached: IntGauge,
    feed_lag: Gauge,
    /// bcrypt runs of this process, by `op` (`hash`, `verify`); counted by
    /// the [`crate::users::PasswordHasher`].
    pub bcrypt_runs: IntCounterVec,
    /// Logins answered 429 by this process.
    pub logins_rate_limited: IntCounter,
    /// The last token counts and when they were computed.
    pub gauges: GaugeCache,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let token_registry = Registry::new();
        let swept_rows = IntCounterVec::new(
            Opts::new(
                "authgate_sweeper_rows_swept_total",
                "refresh_tokens rows deleted by this process's sweeper passes",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let swept_sessions = IntCounter::new(
            "authgate_sweeper_sessions_swept_total",
            "sessions deleted by this process's sweeper passes",
        )
        .expect("valid metric");
        let passes = IntCounterVec::new(
            Opts::new("authgate_sweeper_passes_total", "sweeper passes by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        let last_pass_duration = Gauge::new(
            "authgate_sweeper_last_pass_duration_seconds",
            "duration of the last completed pass",
        )
        .expect("valid metric");
        let last_pass_timestamp = IntGauge::new(
            "authgate_sweeper_last_pass_timestamp_seconds",
            "unix time the last completed pass finished (0: none yet)",
        )
        .expect("valid metric");
        let refresh_tokens = IntGaugeVec::new(
            Opts::new(
                "authgate_refresh_tokens",
                "refresh_tokens rows by state (exact up to 100000 each, then a lower bound or estimate)",
            ),
            &["state"],
        )
        .expect("valid metric");
        let revoked_cached = IntGauge::new(
            "authgate_revoked_sessions_cached",
            "session ids in this instance's revoked-session set",
        )
        .expect("valid metric");
        let feed_lag = Gauge::new(
            "authgate_revocation_feed_lag_seconds",
            "time since this instance's revoked set last caught up with the database (readyz fails above 5)",
        )
        .expect("valid metric");
        let bcrypt_runs = IntCounterVec::new(
            Opts::new(
                "authgate_bcrypt_runs_total",
                "bcrypt hashes and verifications run by this process (the decoy of unknown emails included)",
            ),
            &["op"],
        )
        .expect("valid metric");
        let logins_rate_limited = IntCounter::new(
            "authgate_logins_rate_limited_total",
            "logins answered 429 rate_limited by this process (no password was checked)",
        )
        .expect("valid metric");
        for op in ["hash", "verify"] {
            bcrypt_runs.with_label_values(&[op]);
        }
        for reason in ["expired", "revoked"] {
            swept_rows.with_label_values(&[reason]);
        }
        for outcome in ["done", "skipped", "failed"] {
            passes.with_label_values(&[outcome]);
        }
        let collectors: [Box<dyn prometheus::core::Collector>; 9] = [
            Box::new(feed_lag.clone()),
            Box::new(swept_rows.clone()),
            Box::new(swept_sessions.clone()),
            Box::new(passes.clone()),
            Box::new(last_pass_duration.clone()),
            Box::new(last_pass_timestamp.clone()),
            Box::new(revoked_cached.clone()),
            Box::new(bcrypt_runs.clone()),
            Box::new(logins_rate_limited.clone()),
        ];
        for collector in collectors {
            registry.register(collector).expect("unique metric names");
        }
        token_registry
            .register(Box::new(refresh_tokens.clone()))
            .expect("unique metric names");
        Metrics {
            registry,
            token_registry,
            swept_rows,
            swept_sessions,
            passes,
            last_pass_duration,
            last_pass_timestamp,
            refresh_tokens,
            revoked_cached,
            feed_lag,
            bcrypt_runs,
            logins_rate_limited,
            gauges: GaugeCache::default(),
        }
    }

    /// Counts one sweeper pass of this process.
    pub fn record_pass(&self, outcome: &anyhow::Result<PassOutcome>, finished_unix: i64) {
        match outcome {
            Ok(PassOutcome::Done(report)) => {
                self.swept_rows
                    .with_label_values(&["expired"])
                    .inc_by(report.expired);
                self.swept_rows
                    .with_label_values(&["revoked"])
                    .inc_by(report.revoked);
                self.swept_sessions.inc_by(report.sessions);
                self.passes.with_label_values(&["done"]).inc();
                self.last_pass_duration.set(report.took.as_secs_f64());
                self.last_pass_timestamp.set(finished_unix);
            }
            Ok(PassOutcome::Skipped) => self.passes.with_label_values(&["skipped"]).inc(),
            Err(_) => self.passes.with_label_values(&["failed"]).inc(),
        }
    }

    /// The exposition text: every counter, and the token gauges when
    /// `tokens` could be computed.
    pub fn render(
        &self,
        tokens: Option<TokenCounts>,
        revoked_cached: usize,
        feed_lag: std::time::Duration,
    ) -> String {
        self.revoked_cached
            .set(i64::try_from(revoked_cached).unwrap_or(i64::MAX));
        self.feed_lag.set(feed_lag.as_secs_f64());
        let mut families = self.registry.gather();
        if let Some(t) = tokens {
            for (state, value) in [
                ("live", t.live),
                ("expired", t.expired),
                ("revoked", t.revoked),
            ] {
                self.refresh_tokens.with_label_values(&[state]).set(value);
            }
            families.extend(self.token_registry.gather());
        }
        TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|err| format!("# encoding failed: {err}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
