//! The sweeper (SPEC 5): one pass that purges expired refresh-token rows,
//! revoked rows past their retention, and sessions left with nothing, in
//! short batches found through indexes. The pass is a plain function, called
//! by `authgate sweep` and by the schedule inside `serve`.
//!
//! A pass first takes a session-level advisory lock, so that only one pass
//! runs at a time across every instance and cron. Each batch is one
//! auto-committed statement of at most `sweeper.batch_size` rows: no lock is
//! held for long, and the work of a pass grows with the rows it removes, not
//! with the size of the table. A spent (rotated) row is left until it
//! expires, because reuse detection needs it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Uuid as SqlUuid};
use uuid::Uuid;

use crate::config::SweeperSettings;
use crate::db::{run_blocking_unbounded, DbPool};
use crate::metrics::Metrics;

/// The advisory-lock key of the sweeper ("authgate" in ASCII).
pub const LOCK_KEY: i64 = 0x6175_7468_6761_7465;

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
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
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

/// Deletes one batch of expired rows, oldest first, through
/// `refresh_tokens_expires_at_idx`. `id = ANY(ARRAY(…))` makes each deletion
/// a primary-key look-up; a join (`USING`, `IN`) lets the planner pick a
/// hash join with a sequential scan of the whole table instead.
const DELETE_EXPIRED: &str = "
    DELETE FROM refresh_tokens
     WHERE id = ANY (ARRAY(
           SELECT id FROM refresh_tokens
            WHERE expires_at <= now()
            ORDER BY expires_at
            LIMIT $1
              FOR UPDATE SKIP LOCKED))
    RETURNING session_id";

/// Deletes one batch of revoked rows past the retention, through the partial
/// `refresh_tokens_revoked_at_idx`.
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
/// each, and an index probe of `refresh_tokens_session_id_idx`).
const DELETE_EMPTIED_SESSIONS: &str = "
    DELETE FROM sessions s
     WHERE s.id = ANY($1)
       AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id)";

/// Deletes one batch of sessions past their absolute end (their rows, all
/// expired by then, go with them), through `sessions_expires_at_idx`.
/// Catches sessions that a failed pass emptied but did not delete.
const DELETE_ENDED_SESSIONS: &str = "
    DELETE FROM sessions
     WHERE id = ANY (ARRAY(
           SELECT id FROM sessions
            WHERE expires_at <= now()
            ORDER BY expires_at
            LIMIT $1
              FOR UPDATE SKIP LOCKED))";

/// Runs one pass on this connection. With `dry_run`, counts what a pass
/// would remove and deletes nothing.
pub fn run_pass(
    conn: &mut PgConnection,
    settings: &SweeperSettings,
    dry_run: bool,
) -> anyhow::Result<PassOutcome> {
    let started = Instant::now();
    let locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS flag")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result::<Flag>(conn)?
        .flag;
    if !locked {
        return Ok(PassOutcome::Skipped);
    }
    let result = if dry_run {
        count(conn, settings)
    } else {
        sweep(conn, settings)
    };
    // A lost connection drops the lock and the setting with it, so errors
    // here are moot; a pooled connection must not keep either.
    let _ = diesel::sql_query("RESET synchronous_commit").execute(conn);
    let _ = diesel::sql_query("SELECT pg_advisory_unlock($1) AS flag")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result::<Flag>(conn);
    let mut report = result?;
    report.took = started.elapsed();
    Ok(PassOutcome::Done(report))
}

fn batch_size(settings: &SweeperSettings) -> i64 {
    i64::from(settings.batch_size.max(1))
}

fn retention_secs(settings: &SweeperSettings) -> f64 {
    // make_interval takes double precision seconds.
    settings.revoked_retention_secs as f64
}

fn sweep(conn: &mut PgConnection, settings: &SweeperSettings) -> anyhow::Result<SweepReport> {
    let batch = batch_size(settings);
    let pause = Duration::from_millis(settings.batch_pause_ms);
    let mut report = SweepReport::default();
    // A delete lost in a crash is redone by the next pass, so the batches
    // need not wait for their WAL to reach disk, and do not queue behind
    // (or in front of) the commits of logins and reissues.
    diesel::sql_query("SET synchronous_commit TO off").execute(conn)?;
    let mut emptied: HashSet<Uuid> = HashSet::new();

    report.expired = drain(conn, batch, pause, &mut emptied, |conn| {
        diesel::sql_query(DELETE_EXPIRED)
            .bind::<BigInt, _>(batch)
            .load(conn)
    })?;
    report.revoked = drain(conn, batch, pause, &mut emptied, |conn| {
        diesel::sql_query(DELETE_REVOKED)
            .bind::<BigInt, _>(batch)
            .bind::<diesel::sql_types::Double, _>(retention_secs(settings))
            .load(conn)
    })?;
    let candidates: Vec<Uuid> = emptied.into_iter().collect();
    for chunk in candidates.chunks(batch as usize) {
        report.sessions += diesel::sql_query(DELETE_EMPTIED_SESSIONS)
            .bind::<Array<SqlUuid>, _>(chunk)
            .execute(conn)? as u64;
    }
    loop {
        let deleted = diesel::sql_query(DELETE_ENDED_SESSIONS)
            .bind::<BigInt, _>(batch)
            .execute(conn)?;
        report.sessions += deleted as u64;
        if (deleted as i64) < batch {
            break;
        }
    }
    Ok(report)
}

/// Runs one batch `delete` after another, pausing between them, until a
/// batch comes back short. Returns how many rows went, and notes the
/// sessions they belonged to.
fn drain(
    conn: &mut PgConnection,
    batch: i64,
    pause: Duration,
    emptied: &mut HashSet<Uuid>,
    mut delete: impl FnMut(&mut PgConnection) -> QueryResult<Vec<SessionId>>,
) -> QueryResult<u64> {
    let mut total = 0;
    loop {
        let rows = delete(conn)?;
        total += rows.len() as u64;
        emptied.extend(rows.iter().map(|r| r.session_id));
        if (rows.len() as i64) < batch {
            return Ok(total);
        }
        std::thread::sleep(pause);
    }
}

/// What a pass would remove, counted without deleting.
fn count(conn: &mut PgConnection, settings: &SweeperSettings) -> anyhow::Result<SweepReport> {
    // Every query takes the retention as $1, used or not, so one helper binds it.
    let retention = retention_secs(settings);
    let mut n = |sql: &str| -> anyhow::Result<u64> {
        let count: Count = diesel::sql_query(sql)
            .bind::<diesel::sql_types::Double, _>(retention)
            .get_result(conn)?;
        Ok(count.n.max(0) as u64)
    };
    Ok(SweepReport {
        expired: n(COUNT_EXPIRED)?,
        revoked: n(COUNT_REVOKED)?,
        sessions: n(COUNT_SESSIONS)?,
        took: Duration::ZERO,
    })
}

const COUNT_EXPIRED: &str = "
    SELECT count(*) AS n FROM refresh_tokens
     WHERE expires_at <= now() AND $1::float8 IS NOT NULL";

const COUNT_REVOKED: &str = "
    SELECT count(*) AS n FROM refresh_tokens
     WHERE expires_at > now() AND revoked_at <= now() - make_interval(secs => $1)";

/// Sessions past their end, or whose every row would go.
const COUNT_SESSIONS: &str = "
    SELECT count(*) AS n FROM sessions s
     WHERE s.expires_at <= now()
        OR NOT EXISTS (SELECT 1 FROM refresh_tokens r
                        WHERE r.session_id = s.id
                          AND r.expires_at > now()
                          AND (r.revoked_at IS NULL
                               OR r.revoked_at > now() - make_interval(secs => $1)))";

/// Runs a pass on the blocking pool with a pooled connection, logs it, and
/// counts it. Never fails: a failed pass is logged and the next tick retries.
pub async fn scheduled_pass(pool: DbPool, settings: SweeperSettings, metrics: Arc<Metrics>) {
    let outcome: anyhow::Result<PassOutcome> =
        run_blocking_unbounded(&pool, move |conn| run_pass(conn, &settings, false)).await;
    match &outcome {
        Ok(PassOutcome::Done(report)) => log::info!("sweeper: {report}"),
        Ok(PassOutcome::Skipped) => log::info!("sweeper: skipped, another pass is running"),
        Err(err) => log::warn!("sweeper: pass failed, will retry at the next tick: {err:#}"),
    }
    metrics.record_pass(&outcome, chrono::Utc::now().timestamp());
}

/// Starts the in-process schedule (`sweeper.schedule`, seconds first). An
/// expression the scheduler cannot parse leaves the schedule off with an
/// error in the log: start-up refuses only what SPEC 2 names, and
/// `authgate sweep` from cron still works.
pub async fn start_schedule(
    pool: DbPool,
    settings: SweeperSettings,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Option<tokio_cron_scheduler::JobScheduler>> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let schedule = settings.schedule.clone();
    let job = Job::new_async(schedule.as_str(), move |_, _| {
        Box::pin(scheduled_pass(
            pool.clone(),
            settings.clone(),
            metrics.clone(),
        ))
    });
    let job = match job {
        Ok(job) => job,
        Err(err) => {
            log::error!("sweeper.schedule {schedule:?} is not a valid cron expression ({err}); the in-process sweeper is off, run `authgate sweep` from cron");
            return Ok(None);
        }
    };
    let scheduler = JobScheduler::new().await?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    log::info!("sweeper scheduled: {schedule}");
    Ok(Some(scheduler))
}
