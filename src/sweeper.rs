//! The sweeper (SPEC 5): one pass that purges expired refresh-token rows,
//! revoked rows past their retention, and sessions left with nothing, in
//! short batches found through indexes. The pass is a plain function, called
//! by `authgate sweep` and by the schedule inside `serve`.
//!
//! A pass first takes a transaction-scoped advisory lock on a second
//! connection and holds that transaction open while it runs
//! ([`while_holding_pass_lock`]), so that only one pass runs at a time
//! across every instance and cron, through a transaction pooler too. It
//! then makes the partitions of `refresh_tokens` ahead and drops the ones
//! whose day has ended (see [`crate::partitions`]): that is where most
//! expired rows go, at a cost that does not grow with them. What is left
//! (expired rows of partitions that cannot be dropped yet) goes row by row:
//! each batch is one auto-committed statement of at most `sweeper.batch_size` rows: no lock is
//! held for long, and the work of a pass grows with the rows it removes, not
//! with the size of the table. A spent (rotated) row is left until it
//! expires, because reuse detection needs it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::config::SweeperSettings;
use crate::partitions;

mod lock;
mod schedule;

pub use lock::{while_holding_pass_lock, LOCK_HOLDER_IDLE_MS, LOCK_KEY};
pub use schedule::{scheduled_pass, start_schedule};

/// What one pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// refresh_tokens rows deleted because they expired.
    pub expired: u64,
    /// refresh_tokens rows of revoked sessions deleted after the retention.
    pub revoked: u64,
    /// sessions deleted: past their lifetime, or with no rows left.
    pub sessions: u64,
    pub took: Duration,
}

impl std::fmt::Display for SweepReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "expired={} revoked={} sessions={} took={}ms",
            self.expired,
            self.revoked,
            self.sessions,
            self.took.as_millis()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassOutcome {
    Done(SweepReport),
    /// Another pass holds the lock; this one touched nothing.
    Skipped,
}

#[derive(QueryableByName)]
struct SessionId {
    #[diesel(sql_type = SqlUuid)]
    session_id: Uuid,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A refresh-token row that a live access token may still need: the
/// session's current (unspent) row while the session's last login or
/// reissue is less than one access lifetime ($2 seconds) ago. Such an
/// access token may renew the session after its refresh token has expired
/// (SPEC 4.3), and its logout must still find the session (SPEC 5).
const NEEDED_BY_AN_ACCESS_TOKEN: &str = "
    r.spent_at IS NULL
    AND EXISTS (SELECT 1 FROM sessions s
                 WHERE s.id = r.session_id
                   AND s.last_used_at > now() - make_interval(secs => $2))";

/// Deletes one batch of expired rows, oldest first, through
/// `refresh_tokens_expires_at_idx`, above $3: rows below it are in partitions
/// left for the drop (one whose detach timed out is retried next pass). `id = ANY(ARRAY(…))` makes each deletion
/// a primary-key look-up; a join (`USING`, `IN`) lets the planner pick a
/// hash join with a sequential scan of the whole table instead.
/// The range on `expires_at` outside keeps those look-ups to the partitions
/// that can hold expired rows.
fn delete_expired_sql() -> String {
    format!(
        "DELETE FROM refresh_tokens
          WHERE expires_at <= now()
            AND expires_at >= coalesce($3, '-infinity'::timestamptz)
            AND id = ANY (ARRAY(
                SELECT r.id FROM refresh_tokens r
                 WHERE r.expires_at <= now()
                   AND r.expires_at >= coalesce($3, '-infinity'::timestamptz)
                   AND NOT ({NEEDED_BY_AN_ACCESS_TOKEN})
                 ORDER BY r.expires_at
                 LIMIT $1
                   FOR UPDATE OF r SKIP LOCKED))
         RETURNING session_id"
    )
}

/// Deletes one batch of revoked rows past the retention ($2 seconds: the
/// larger of `sweeper.revoked_retention_secs` and the access lifetime),
/// through the partial `refresh_tokens_revoked_at_idx`.
const DELETE_REVOKED: &str = "
    DELETE FROM refresh_tokens
     WHERE id = ANY (ARRAY(
           SELECT id FROM refresh_tokens
            WHERE revoked_at <= now() - make_interval(secs => $2)
            ORDER BY revoked_at
            LIMIT $1
              FOR UPDATE SKIP LOCKED))
    RETURNING session_id";

/// Deletes the given sessions that have no rows left (a primary-key look-up
/// each, and an index probe of `refresh_tokens_session_id_idx`), except a
/// revoked one within $2 seconds of its revocation: every instance, a newly
/// started one included, learns of revocations from `sessions.revoked_at`.
const DELETE_EMPTIED_SESSIONS: &str = "
    DELETE FROM sessions s
     WHERE s.id = ANY($1)
       AND (s.revoked_at IS NULL OR s.revoked_at <= now() - make_interval(secs => $2))
       AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id)";

/// Deletes one batch of revoked sessions past the retention ($2 seconds)
/// that have no rows left (an emptied session kept by the rule above, or a
/// tombstone written by a logout), through `sessions_revoked_at_idx`.
const DELETE_REVOKED_SESSIONS: &str = "
    DELETE FROM sessions
     WHERE id = ANY (ARRAY(
           SELECT s.id FROM sessions s
            WHERE s.revoked_at <= now() - make_interval(secs => $2)
              AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id)
            ORDER BY s.revoked_at
            LIMIT $1
              FOR UPDATE OF s SKIP LOCKED))";

/// Deletes one batch of sessions past their absolute end (their rows, all
/// expired by then, go with them; no access token outlives it), through
/// `sessions_expires_at_idx`.
const DELETE_ENDED_SESSIONS: &str = "
    DELETE FROM sessions
     WHERE id = ANY (ARRAY(
           SELECT id FROM sessions
            WHERE expires_at <= now()
            ORDER BY expires_at
            LIMIT $1
              FOR UPDATE SKIP LOCKED))";

/// How long things live, from the rest of the configuration: what a pass
/// must keep for live access tokens, and the login-limit window.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access_ttl: Duration,
    /// `sessions.reuse_grace_secs`: a repeat within it gets a new access
    /// token beside an old refresh token.
    pub reuse_grace: Duration,
    /// The longest a refresh token lives: its TTL, capped by the session's
    /// lifetime. Partitions are made ahead for it.
    pub token_lifetime: Duration,
    pub login_window: Duration,
}

impl Lifetimes {
    pub fn of(settings: &crate::config::Settings) -> Lifetimes {
        let policy = settings.session_policy();
        Lifetimes {
            access_ttl: policy.access_ttl.to_std().unwrap_or_default(),
            reuse_grace: policy.reuse_grace.to_std().unwrap_or_default(),
            token_lifetime: policy
                .refresh_ttl
                .min(policy.max_lifetime)
                .to_std()
                .unwrap_or_default(),
            login_window: Duration::from_secs(settings.ratelimit.window_secs),
        }
    }
}

/// How long things must stay, from the settings and the access lifetime.
#[derive(Debug, Clone, Copy)]
struct Horizons {
    batch: i64,
    pause: Duration,
    /// The access lifetime, in seconds (make_interval takes float8).
    access_ttl: f64,
    /// How long revoked rows and sessions stay: the retention, but never
    /// less than the access lifetime.
    keep_revoked: f64,
    /// How long after the end of its range a partition stays: no access
    /// token issued with one of its rows is alive by then.
    keep_partition: chrono::Duration,
    token_lifetime: chrono::Duration,
}

impl Horizons {
    fn new(settings: &SweeperSettings, lifetimes: Lifetimes) -> Horizons {
        let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(crate::config::LONGEST);
        let keep_partition = chrono(lifetimes.access_ttl)
            + chrono(lifetimes.reuse_grace)
            + crate::partitions::CLOCK_MARGIN;
        let access_ttl = lifetimes.access_ttl.as_secs_f64();
        Horizons {
            keep_partition,
            token_lifetime: chrono(lifetimes.token_lifetime),
            batch: i64::from(settings.batch_size.max(1)),
            pause: Duration::from_millis(settings.batch_pause_ms),
            access_ttl,
            keep_revoked: (settings.revoked_retention_secs as f64).max(access_ttl),
        }
    }
}

/// Runs one pass on `conn`, while `lock` (a second connection) holds the
/// one-pass-at-a-time guarantee. With `dry_run`, counts what a pass would
/// remove and deletes nothing. Nothing a live access token may still need
/// is removed (SPEC 5). Login failures that have left the limits' window go
/// too (logged, not in the report's line).
pub fn run_pass(
    conn: &mut PgConnection,
    lock: &mut PgConnection,
    settings: &SweeperSettings,
    lifetimes: Lifetimes,
    dry_run: bool,
) -> anyhow::Result<PassOutcome> {
    let started = Instant::now();
    let held = while_holding_pass_lock(lock, || run_pass_body(conn, settings, lifetimes, dry_run))?;
    let Some(result) = held else {
        return Ok(PassOutcome::Skipped);
    };
    let mut report = result?;
    report.took = started.elapsed();
    Ok(PassOutcome::Done(report))
}

/// What a pass does once it holds the lock.
fn run_pass_body(
    conn: &mut PgConnection,
    settings: &SweeperSettings,
    lifetimes: Lifetimes,
    dry_run: bool,
) -> anyhow::Result<SweepReport> {
    let horizons = Horizons::new(settings, lifetimes);
    if dry_run {
        count(conn, horizons)
    } else {
        sweep(conn, horizons).and_then(|report| {
            let window = chrono::Duration::from_std(lifetimes.login_window)?;
            let purged = crate::ratelimit::purge_expired(conn, chrono::Utc::now(), window)?;
            if purged > 0 {
                log::info!("sweeper: {purged} login failure(s) past the window purged");
            }
            Ok(report)
        })
    }
}

fn sweep(conn: &mut PgConnection, h: Horizons) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let mut emptied: HashSet<Uuid> = HashSet::new();

    partitions::make_ahead_in_pass(conn, h.token_lifetime)?;
    let dropped = partitions::drop_ended(conn, h.keep_partition, h.batch, |conn, ids| {
        delete_emptied_sessions(conn, ids, h)
    })?;
    report.expired = dropped.rows;
    report.sessions = dropped.sessions;

    let boundary = partitions::drop_boundary(conn, h.keep_partition)?;
    let delete_expired = delete_expired_sql();
    report.expired += drain(conn, h, &mut emptied, |conn| {
        diesel::sql_query(&delete_expired)
            .bind::<BigInt, _>(h.batch)
            .bind::<Double, _>(h.access_ttl)
            .bind::<Nullable<Timestamptz>, _>(boundary)
            .load(conn)
    })?;
    report.revoked = drain(conn, h, &mut emptied, |conn| {
        diesel::sql_query(DELETE_REVOKED)
            .bind::<BigInt, _>(h.batch)
            .bind::<Double, _>(h.keep_revoked)
            .load(conn)
    })?;
    let candidates: Vec<Uuid> = emptied.into_iter().collect();
    for chunk in candidates.chunks(h.batch as usize) {
        report.sessions += delete_emptied_sessions(conn, chunk, h)?;
    }
    for (sql, horizon) in [
        (DELETE_REVOKED_SESSIONS, Some(h.keep_revoked)),
        (DELETE_ENDED_SESSIONS, None),
    ] {
        loop {
            let query = diesel::sql_query(sql).bind::<BigInt, _>(h.batch);
            let deleted = match horizon {
                Some(secs) => query.bind::<Double, _>(secs).execute(conn)?,
                None => query.execute(conn)?,
            };
            report.sessions += deleted as u64;
            if (deleted as i64) < h.batch {
                break;
            }
        }
    }
    Ok(report)
}

fn delete_emptied_sessions(conn: &mut PgConnection, ids: &[Uuid], h: Horizons) -> QueryResult<u64> {
    diesel::sql_query(DELETE_EMPTIED_SESSIONS)
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Double, _>(h.keep_revoked)
        .execute(conn)
        .map(|n| n as u64)
}

/// Runs one batch `delete` after another, pausing between them, until a
/// batch comes back short. Returns how many rows went, and notes the
/// sessions they belonged to.
fn drain(
    conn: &mut PgConnection,
    h: Horizons,
    emptied: &mut HashSet<Uuid>,
    mut delete: impl FnMut(&mut PgConnection) -> QueryResult<Vec<SessionId>>,
) -> QueryResult<u64> {
    let mut total = 0;
    loop {
        let rows = delete(conn)?;
        total += rows.len() as u64;
        emptied.extend(rows.iter().map(|r| r.session_id));
        if (rows.len() as i64) < h.batch {
            return Ok(total);
        }
        std::thread::sleep(h.pause);
    }
}

/// What a pass would remove, counted without deleting: the rows of the
/// partitions it would drop as [`partitions::count_rows`] counts them, the
/// rest exactly. Every query takes the access lifetime as $1, the revoked
/// retention as $2 and the drop boundary as $3.
fn count(conn: &mut PgConnection, h: Horizons) -> anyhow::Result<SweepReport> {
    let mut dropped = 0;
    for partition in partitions::droppable(conn, h.keep_partition)? {
        dropped += partitions::count_rows(conn, &partition.name)?;
    }
    let boundary = partitions::drop_boundary(conn, h.keep_partition)?;
    let mut n = |sql: &str| -> anyhow::Result<u64> {
        let count: Count = diesel::sql_query(sql)
            .bind::<Double, _>(h.access_ttl)
            .bind::<Double, _>(h.keep_revoked)
            .bind::<Nullable<Timestamptz>, _>(boundary)
            .get_result(conn)?;
        Ok(count.n.max(0) as u64)
    };
    let needed = NEEDED_BY_AN_ACCESS_TOKEN.replace("$2", "$1");
    let expired = format!(
        "SELECT count(*) AS n FROM refresh_tokens r
          WHERE r.expires_at <= now() AND NOT ({needed}) AND $2::float8 IS NOT NULL
            AND r.expires_at >= coalesce($3, '-infinity'::timestamptz)"
    );
    let revoked = "SELECT count(*) AS n FROM refresh_tokens r
          WHERE NOT (r.expires_at <= now())
            AND r.revoked_at <= now() - make_interval(secs => $2)
            AND $1::float8 IS NOT NULL AND ($3::timestamptz IS NULL OR true)";
    // Sessions past their end, or left with no row and not a revoked
    // session still within the retention.
    let sessions = format!(
        "SELECT count(*) AS n FROM sessions s
          WHERE s.expires_at <= now()
             OR ((s.revoked_at IS NULL OR s.revoked_at <= now() - make_interval(secs => $2))
                 AND NOT EXISTS (
                     SELECT 1 FROM refresh_tokens r
                      WHERE r.session_id = s.id
                        AND NOT (r.expires_at <= now() AND NOT ({needed}))
                        AND NOT coalesce(r.revoked_at <= now() - make_interval(secs => $2), false)))
             OR ($3::timestamptz IS NULL AND false)"
    );
    Ok(SweepReport {
        expired: dropped + n(&expired)?,
        revoked: n(revoked)?,
        sessions: n(&sessions)?,
        took: Duration::ZERO,
    })
}
