//! `GET /metrics`: Prometheus text. Sweeper totals come from this process's
//! passes; the refresh-token gauges are computed cheaply and cached.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::sweeper::SweeperStats;

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

/// Renders the exposition text.
pub fn render(stats: &SweeperStats, tokens: Option<TokenCounts>, revoked_cached: usize) -> String {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "authgate_sweeper_rows_swept_total",
        "counter",
        "refresh_tokens rows deleted by this process's sweeper passes",
        &[
            (
                "{reason=\"expired\"}",
                get(&stats.expired_total).to_string(),
            ),
            (
                "{reason=\"revoked\"}",
                get(&stats.revoked_total).to_string(),
            ),
        ],
    );
    metric(
        "authgate_sweeper_sessions_swept_total",
        "counter",
        "sessions deleted by this process's sweeper passes",
        &[("", get(&stats.sessions_total).to_string())],
    );
    metric(
        "authgate_sweeper_passes_total",
        "counter",
        "sweeper passes by outcome",
        &[
            ("{outcome=\"done\"}", get(&stats.passes_done).to_string()),
            (
                "{outcome=\"skipped\"}",
                get(&stats.passes_skipped).to_string(),
            ),
            (
                "{outcome=\"failed\"}",
                get(&stats.passes_failed).to_string(),
            ),
        ],
    );
    metric(
        "authgate_sweeper_last_pass_duration_seconds",
        "gauge",
        "duration of the last completed pass",
        &[(
            "",
            format!("{:.6}", get(&stats.last_duration_micros) as f64 / 1e6),
        )],
    );
    metric(
        "authgate_sweeper_last_pass_timestamp_seconds",
        "gauge",
        "unix time the last completed pass finished (0: none yet)",
        &[("", get(&stats.last_finished_unix).to_string())],
    );
    if let Some(t) = tokens {
        metric(
            "authgate_refresh_tokens",
            "gauge",
            "refresh_tokens rows by state (exact up to 100000 each, then a lower bound or estimate)",
            &[
                ("{state=\"live\"}", t.live.to_string()),
                ("{state=\"expired\"}", t.expired.to_string()),
                ("{state=\"revoked\"}", t.revoked.to_string()),
            ],
        );
    }
    metric(
        "authgate_revoked_sessions_cached",
        "gauge",
        "session ids in this instance's revoked-session set",
        &[("", revoked_cached.to_string())],
    );
    out
}
