//! The partitions of `refresh_tokens` (SPEC 9): one per UTC day of
//! `expires_at`, made ahead so that an insert always finds one, and dropped
//! whole once their day has ended and nothing can need their rows, so that
//! removing expired rows costs the same for ten rows or ten million.
//!
//! The SQL functions of the migration (`authgate_make_refresh_token_partitions`
//! and its helpers) own the making, so that `authgate migrate`, every sweeper
//! pass and an insert that found no partition make them the same way. This
//! module decides when, and owns the dropping: `DETACH PARTITION …
//! CONCURRENTLY` (which never takes more than SHARE UPDATE EXCLUSIVE on
//! `refresh_tokens`, so reissues go on; it cannot run in a transaction, so
//! the role's `lock_timeout` bounds its wait), then `DROP TABLE` of the
//! detached table under a short `SET LOCAL lock_timeout`; what times out is
//! retried at the next pass. Nothing here sets anything on the session, so
//! it all works through a transaction pooler.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// The width of a partition: one UTC day. With the default 14-day refresh
/// lifetime that is 17 partitions (ahead included), few enough that a query
/// without `expires_at` (by session) probes them all cheaply, and expired
/// rows wait at most a day (plus one access lifetime) for their drop.
pub const WIDTH: Duration = Duration::days(1);

/// Partitions are made this far past the longest token lifetime, so that a
/// day's boundary, or a sweeper that does not run for a day, never leaves an
/// insert without one.
pub const AHEAD_MARGIN: Duration = Duration::days(2);

/// Partitions made ahead cover at most this (a refresh lifetime of years
/// would mean thousands of empty tables); beyond it, an insert that finds no
/// partition makes its own day's.
pub const MAX_AHEAD: Duration = Duration::days(400);

/// A partition is dropped this long after the end of its range on top of
/// the access lifetime and the reuse grace: the instances' clocks (which
/// wrote `issued_at` and `last_used_at`) may run ahead of PostgreSQL's.
pub const CLOCK_MARGIN: Duration = Duration::seconds(60);

/// How long the sweeper's DDL waits for a lock before giving up until the
/// next pass: a statement waiting for a lock makes later ones queue behind
/// it, so the wait is what a reissue could stall at worst.
pub const DDL_LOCK_TIMEOUT_MS: u64 = 200;

/// The rows of a dropped partition of at most this many pages (16 MiB at
/// the default 8 kB pages: some 125,000 rows of this schema) are counted
/// exactly; beyond, PostgreSQL's estimate is reported (see [`count_rows`]).
pub const EXACT_COUNT_PAGES: f64 = 2048.0;

/// About how many pages [`count_rows`] reads to estimate the rows of a
/// large table that PostgreSQL has no statistics of yet.
pub const SAMPLE_PAGES: f64 = 256.0;

/// One partition of `refresh_tokens`.
#[derive(Debug, Clone, QueryableByName)]
pub struct Partition {
    /// The table's name, quoted if it needs it (`regclass` text).
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Timestamptz)]
    pub lower_bound: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub upper_bound: DateTime<Utc>,
    #[diesel(sql_type = Bool)]
    pub detach_pending: bool,
}

/// The partitions, oldest first.
pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<Partition>> {
    diesel::sql_query(
        "SELECT partition::text AS name, lower_bound, upper_bound, detach_pending
           FROM authgate_refresh_token_partitions()",
    )
    .load(conn)
}

#[derive(QueryableByName)]
struct Made {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    made: i32,
}

/// Makes the missing partitions for every `expires_at` in `[from, until)`;
/// returns how many were made.
pub fn make(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<u32> {
    let made: Made = diesel::sql_query(
        "SELECT authgate_make_refresh_token_partitions($1, $2, make_interval(secs => $3)) AS made",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(until)
    .bind::<Double, _>(WIDTH.num_seconds() as f64)
    .get_result(conn)?;
    Ok(made.made.max(0) as u32)
}

/// Until when partitions are made ahead at `now`, for tokens that live at
/// most `token_lifetime`.
pub fn ahead_until(now: DateTime<Utc>, token_lifetime: Duration) -> DateTime<Utc> {
    now + token_lifetime.min(MAX_AHEAD) + AHEAD_MARGIN
}

/// Makes the partitions ahead: from today to [`ahead_until`]. `authgate
/// migrate` (and `serve`, which migrates first) and every sweeper pass call it.
pub fn make_ahead(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    token_lifetime: Duration,
) -> QueryResult<u32> {
    make(conn, now, ahead_until(now, token_lifetime))
}

/// [`make_ahead`] for a sweeper pass, by the system clock, under the short
/// lock timeout: a pass that cannot get the lock in time makes them at the
/// next one (they are made days ahead).
pub fn make_ahead_in_pass(conn: &mut PgConnection, token_lifetime: Duration) -> QueryResult<u32> {
    let now = Utc::now();
    match with_lock_timeout(conn, DDL_LOCK_TIMEOUT_MS, |conn| {
        make_ahead(conn, now, token_lifetime)
    }) {
        Ok(made) => {
            if made > 0 {
                log::info!("sweeper: made {made} refresh_tokens partition(s) ahead");
            }
            Ok(made)
        }
        Err(err) if is_lock_timeout(&err) => {
            log::warn!("sweeper: making partitions ahead got no lock within {DDL_LOCK_TIMEOUT_MS} ms; the next pass retries");
            Ok(0)
        }
        Err(err) => Err(err),
    }
}

fn is_lock_timeout(err: &DieselError) -> bool {
    matches!(err, DieselError::DatabaseError(_, info) if info.message().contains("lock timeout"))
}

/// Whether an insert failed because no partition takes its `expires_at`.
pub fn is_missing_partition(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info)
            if info.message().starts_with("no partition of relation")
    )
}

/// Runs `insert`; if it found no partition for `expires_at` (the partitions
/// ahead were not made: a sweeper that has not run for days, or a clock far
/// ahead), makes that day's partition and runs it once more. Inside a
/// transaction the caller gives `insert` a savepoint of its own, since the
/// failed statement aborts the transaction otherwise.
pub fn with_partition_for<T>(
    conn: &mut PgConnection,
    expires_at: DateTime<Utc>,
    mut insert: impl FnMut(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    match insert(conn) {
        Err(err) if is_missing_partition(&err) => {
            let made = make(conn, expires_at, expires_at + Duration::seconds(1))?;
            log::warn!(
                "no refresh_tokens partition for expires_at {expires_at}; made {made} \
                 (partitions are made ahead by migrate and by every sweeper pass: is the sweeper running?)"
            );
            insert(conn)
        }
        other => other,
    }
}

/// Runs `f` in a transaction whose `lock_timeout` is `ms` (`SET LOCAL`:
/// nothing outlives the transaction, so this holds behind a transaction
/// pooler too, SPEC 9).
pub fn with_lock_timeout<T>(
    conn: &mut PgConnection,
    ms: u64,
    f: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    conn.transaction(|conn| {
        diesel::sql_query("SELECT set_config('lock_timeout', $1, true)")
            .bind::<Text, _>(format!("{ms}ms"))
            .execute(conn)?;
        f(conn)
    })
}

/// The end of what a pass leaves to partition drops: the upper bound of the
/// newest partition whose range ended more than `keep` ago (`None`: none
/// has). Rows below it are never deleted one by one.
pub fn drop_boundary(
    conn: &mut PgConnection,
    keep: Duration,
) -> QueryResult<Option<DateTime<Utc>>> {
    #[derive(QueryableByName)]
    struct Boundary {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        upper: Option<DateTime<Utc>>,
    }
    let b: Boundary = diesel::sql_query(
        "SELECT max(upper_bound) AS upper FROM authgate_refresh_token_partitions()
          WHERE upper_bound <= now() - make_interval(secs => $1)",
    )
    .bind::<Double, _>(keep.num_milliseconds() as f64 / 1000.0)
    .get_result(conn)?;
    Ok(b.upper)
}

/// The partitions whose range ended more than `keep` ago: no row in them is
/// live, and no access token issued with one of them can be alive, since a
/// row is issued before it expires and an access token of its pair dies one
/// access lifetime (plus the reuse grace, for a repeat) after that.
pub fn droppable(conn: &mut PgConnection, keep: Duration) -> QueryResult<Vec<Partition>> {
    let boundary = drop_boundary(conn, keep)?;
    Ok(list(conn)?
        .into_iter()
        .filter(|p| boundary.is_some_and(|b| p.upper_bound <= b))
        .collect())
}

/// How many rows a table holds, at a cost that does not grow with them:
/// exact while the table has at most [`EXACT_COUNT_PAGES`] pages; beyond,
/// PostgreSQL's estimate as the planner makes it (`reltuples / relpages` ×
/// the pages the table has now) or, for a table never vacuumed nor
/// analyzed, the density of a sample of about [`SAMPLE_PAGES`] of its pages
/// (`TABLESAMPLE SYSTEM`) × its pages. Either reads a bounded number of
/// pages, however many million rows the table has.
pub fn count_rows(conn: &mut PgConnection, table: &str) -> QueryResult<u64> {
    #[derive(QueryableByName)]
    struct Stats {
        #[diesel(sql_type = Double)]
        pages: f64,
        #[diesel(sql_type = Double)]
        reltuples: f64,
        #[diesel(sql_type = Double)]
        relpages: f64,
    }
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let stats: Stats = diesel::sql_query(format!(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::float8 AS pages,
                c.reltuples::float8 AS reltuples, c.relpages::float8 AS relpages
           FROM pg_class c WHERE c.oid = '{table}'::regclass"
    ))
    .get_result(conn)?;
    if stats.pages <= EXACT_COUNT_PAGES {
        let n: N =
            diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")).get_result(conn)?;
        return Ok(n.n.max(0) as u64);
    }
    let estimate = if stats.reltuples >= 0.0 && stats.relpages > 0.0 {
        stats.reltuples / stats.relpages * stats.pages
    } else {
        let percent = (100.0 * SAMPLE_PAGES / stats.pages).min(100.0);
        let n: N = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM {table} TABLESAMPLE SYSTEM ($1) REPEATABLE (0)"
        ))
        .bind::<Double, _>(percent)
        .get_result(conn)?;
        n.n as f64 * 100.0 / percent
    };
    Ok(estimate.round().max(0.0) as u64)
}

/// What dropping partitions removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Partitions dropped.
    pub partitions: u64,
    /// Their rows (see [`count_rows`]).
    pub rows: u64,
    /// Sessions that `emptied` deleted.
    pub sessions: u64,
}

/// At most this many detached tables are counted and have their sessions
/// walked together (one statement names them all): a backlog of many days
/// goes in a few rounds of bounded size.
pub const DROP_AT_ONCE: usize = 32;

/// Detaches the partitions whose range ended more than `keep` ago, then
/// drops every detached one: a detach interrupted earlier is finished first
/// (`FINALIZE`), and a table detached by an earlier pass that failed before
/// its drop is dropped now. Before the tables go, `emptied` is handed their
/// sessions, `batch` at a time and each once however many of the tables
/// have rows of it, to delete those left with no rows (a detached table's
/// rows are no longer in `refresh_tokens`). The tables then go one after
/// another, a `DROP TABLE` each: the drop's time is the file system's
/// freeing of the table's files, which stalls the disk's other writes (the
/// WAL's among them) while it lasts, and side by side drops make those
/// stalls longer (measured: `scripts/bench-partitions.sh`). A statement that does not get its lock within
/// [`DDL_LOCK_TIMEOUT_MS`] ends the dropping for this pass (logged; the
/// next pass retries), and the pass goes on.
pub fn drop_ended(
    conn: &mut PgConnection,
    keep: Duration,
    batch: i64,
    mut emptied: impl FnMut(&mut PgConnection, &[Uuid]) -> QueryResult<u64>,
) -> QueryResult<Dropped> {
    let mut dropped = Dropped::default();
    for partition in list(conn)?.into_iter().filter(|p| p.detach_pending) {
        let sql = format!(
            "ALTER TABLE refresh_tokens DETACH PARTITION {} FINALIZE",
            partition.name
        );
        if !ddl_outside_transaction(conn, &sql)? {
            return Ok(dropped);
        }
    }
    for partition in droppable(conn, keep)? {
        let started = Instant::now();
        let sql = format!(
            "ALTER TABLE refresh_tokens DETACH PARTITION {} CONCURRENTLY",
            partition.name
        );
        if !ddl_outside_transaction(conn, &sql)? {
            break;
        }
        log::info!(
            "sweeper: detached {} in {} ms",
            partition.name,
            started.elapsed().as_millis()
        );
    }
    for tables in detached(conn)?.chunks(DROP_AT_ONCE) {
        let started = Instant::now();
        let rows = tables
            .iter()
            .map(|table| count_rows(conn, table))
            .collect::<QueryResult<Vec<u64>>>()?;
        let counted = started.elapsed();
        let mut after = Uuid::nil();
        loop {
            let ids = sessions_of(conn, tables, after, batch)?;
            let Some(last) = ids.last() else { break };
            after = *last;
            dropped.sessions += emptied(conn, &ids)?;
            if (ids.len() as i64) < batch {
                break;
            }
        }
        let handed_over = started.elapsed();
        // The drops stop at the first that does not get its lock: the
        // tables gone are the first `went`.
        let mut went = 0;
        for table in tables {
            if !ddl(conn, &format!("DROP TABLE {table}"))? {
                break;
            }
            went += 1;
        }
        let rows_gone: u64 = rows[..went].iter().sum();
        let took = started.elapsed();
        // Each step's time, so that a slow drop says where it went.
        log::info!(
            "sweeper: dropped {went} of {} detached table(s) (about {rows_gone} expired rows) \
             in {} ms: count {} ms, sessions {} ms, drop {} ms",
            tables.len(),
            took.as_millis(),
            counted.as_millis(),
            (handed_over - counted).as_millis(),
            (took - handed_over).as_millis()
        );
        dropped.partitions += went as u64;
        dropped.rows += rows_gone;
        if went < tables.len() {
            break;
        }
    }
    Ok(dropped)
}

/// Runs one DDL statement under the short lock timeout. `Ok(false)`: it did
/// not get its lock in time (logged; retried at the next pass).
fn ddl(conn: &mut PgConnection, sql: &str) -> QueryResult<bool> {
    got_lock(
        sql,
        with_lock_timeout(conn, DDL_LOCK_TIMEOUT_MS, |conn| {
            diesel::sql_query(sql).execute(conn)
        }),
    )
}

/// [`ddl`] for `DETACH PARTITION … CONCURRENTLY` and `… FINALIZE`, which
/// cannot run in a transaction block, so no `SET LOCAL` can shorten their
/// wait (and a session `SET` would outlive them behind a pooler): the
/// deadlines of the role bound it (`database.lock_timeout_ms`). Neither
/// takes more than SHARE UPDATE EXCLUSIVE on `refresh_tokens`, which no
/// reissue waits for.
fn ddl_outside_transaction(conn: &mut PgConnection, sql: &str) -> QueryResult<bool> {
    got_lock(sql, diesel::sql_query(sql).execute(conn))
}

fn got_lock(sql: &str, done: QueryResult<usize>) -> QueryResult<bool> {
    match done {
        Ok(_) => Ok(true),
        Err(err) if is_lock_timeout(&err) => {
            log::warn!("sweeper: {sql}: no lock in time; the next pass retries");
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// Former partitions that are detached but not dropped yet: tables named as
/// partitions are (`refresh_tokens_pYYYYMMDD…`) beside `refresh_tokens`
/// that are no partition.
fn detached(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let names: Vec<Name> = diesel::sql_query(
        "SELECT c.oid::regclass::text AS name
           FROM pg_class c
          WHERE c.relkind = 'r' AND NOT c.relispartition
            AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'refresh_tokens'::regclass)
            AND c.relname ~ '^refresh_tokens_p[0-9]{8}'
          ORDER BY c.relname",
    )
    .load(conn)?;
    Ok(names.into_iter().map(|n| n.name).collect())
}

/// Up to `limit` distinct session ids above `after` of some (detached)
/// tables, in order and each once: one descent of each table's `session_id`
/// index per session (a skip scan, merged with `least`, which skips the
/// tables that have no more), so the cost grows with the sessions, not with
/// their rows.
fn sessions_of(
    conn: &mut PgConnection,
    tables: &[String],
    after: Uuid,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        session_id: Uuid,
    }
    let next_after = |bound: &str| {
        let each: Vec<String> = tables
            .iter()
            .map(|table| {
                format!(
                    "(SELECT t.session_id FROM {table} t \
                     WHERE t.session_id > {bound} \
                     ORDER BY t.session_id LIMIT 1)"
                )
            })
            .collect();
        format!("least({})", each.join(", "))
    };
    let ids: Vec<Id> = diesel::sql_query(format!(
        "WITH RECURSIVE ids(session_id) AS (
             SELECT {}
             UNION ALL
             SELECT {} FROM ids WHERE ids.session_id IS NOT NULL)
         SELECT session_id FROM ids WHERE session_id IS NOT NULL LIMIT $2",
        next_after("$1::uuid"),
        next_after("ids.session_id"),
    ))
    .bind::<SqlUuid, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    Ok(ids.into_iter().map(|i| i.session_id).collect())
}
