//! The dropping of partitions whose range has ended: which ones, how many
//! rows they hold (counted at a cost that does not grow with them), and the
//! detach, hand-over of their sessions and drop.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::{is_lock_timeout, list, with_lock_timeout, Partition, DDL_LOCK_TIMEOUT_MS};

/// The rows of a dropped partition of at most this many pages (16 MiB at
/// the default 8 kB pages: some 125,000 rows of this schema) are counted
/// exactly; beyond, PostgreSQL's estimate is reported (see [`count_rows`]).
pub const EXACT_COUNT_PAGES: f64 = 2048.0;

/// About how many pages [`count_rows`] reads to estimate the rows of a
/// large table that PostgreSQL has no statistics of yet.
pub const SAMPLE_PAGES: f64 = 256.0;

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
/// its drop is dropped now. Each detach runs in its own short transaction
/// that locks `sessions` first and drops the table's foreign key with it
/// ([`detach`]), so that no drop locks `sessions` ([`drop_foreign_keys`]).
/// Before the tables go, `emptied` is handed their sessions, `batch` at a
/// time and each once however many of the tables have rows of it, to
/// delete those left with no rows (a detached table's rows are no longer in
/// `refresh_tokens`). The tables then go one after another, a `DROP TABLE`
/// each: the drop's time is the file system's freeing of the table's files,
/// which stalls the disk's other writes (the WAL's among them) while it
/// lasts, and side by side drops make those stalls longer (measured:
/// `scripts/bench-partitions.sh`). A statement that does not get its lock
/// within [`DDL_LOCK_TIMEOUT_MS`] ends the dropping for this pass (logged;
/// the next pass retries), and the pass goes on.
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
        if !detach(conn, &partition.name)? {
            break;
        }
        log::info!(
            "sweeper: detached {} in {} ms",
            partition.name,
            started.elapsed().as_millis()
        );
    }
    for tables in detached(conn)?.chunks(DROP_AT_ONCE) {
        if !drop_foreign_keys(conn, tables)? {
            break;
        }
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

/// Detaches one partition in a transaction that first locks `sessions`
/// (ACCESS EXCLUSIVE), then `refresh_tokens` (the detach's ACCESS
/// EXCLUSIVE), and drops the detached table's foreign key before it
/// commits; all of it catalog work of a few milliseconds, under the short
/// lock timeout. `Ok(false)` as [`ddl`].
///
/// Why that order: reissue's statement locks `sessions` (for its `FOR
/// UPDATE`), then `refresh_tokens` and every partition, then `sessions`
/// again (for its `UPDATE`). A detach gives the detached table's foreign
/// key its own triggers on `sessions`, and dropping the key drops them,
/// which takes ACCESS EXCLUSIVE there. Whoever takes `refresh_tokens` before
/// that lock on `sessions` deadlocks with a reissue between its two steps:
/// `DETACH … CONCURRENTLY` (used before) did, and both sides waited for
/// the role's `lock_timeout`, the reissues answering 503 after one second
/// (`scripts/bench-sweeper.sh`, two runs of five); so did a transaction
/// that took a weaker lock on `sessions` first, giving up at every pass.
/// Waiting for ACCESS EXCLUSIVE on `sessions` while holding nothing lets
/// every reissue in flight finish (one holding `sessions` already is let
/// ahead) and makes the next ones queue behind it for a few milliseconds.
fn detach(conn: &mut PgConnection, partition: &str) -> QueryResult<bool> {
    let sql = format!("ALTER TABLE refresh_tokens DETACH PARTITION {partition}");
    got_lock(
        &sql,
        with_sessions_locked(conn, |conn| {
            diesel::sql_query(&sql).execute(conn)?;
            let keys = foreign_keys_of(conn, &[partition.to_owned()])?;
            drop_keys(conn, &keys)
        }),
    )
}

/// Drops the foreign keys (to `sessions`) of detached tables, in one short
/// transaction that locks `sessions` first, as [`detach`] does; `Ok(false)`
/// as [`ddl`]. [`detach`] drops its table's key itself: this is for tables
/// that an earlier version detached with theirs.
///
/// A `DROP TABLE` of a table that references `sessions` drops its triggers
/// there too, so it locks `sessions` (ACCESS EXCLUSIVE) until it commits; and PostgreSQL frees the table's files at commit, before it
/// lets its locks go. That takes the file system's time, over a second for
/// a million rows on this machine, and every reissue (which updates
/// `sessions`) waited for it and timed out with 503. Without the key the
/// drop locks nothing but its own table. The hand-over's session deletes no
/// longer cascade into rows that are about to go anyway, either.
fn drop_foreign_keys(conn: &mut PgConnection, tables: &[String]) -> QueryResult<bool> {
    // Usually none is left: no need to lock `sessions` then.
    if foreign_keys_of(conn, tables)?.is_empty() {
        return Ok(true);
    }
    got_lock(
        "ALTER TABLE … DROP CONSTRAINT (detached tables' foreign keys)",
        with_sessions_locked(conn, |conn| {
            let keys = foreign_keys_of(conn, tables)?;
            drop_keys(conn, &keys)
        }),
    )
}

/// Runs `f` in a transaction under the short lock timeout, after locking
/// `sessions` in ACCESS EXCLUSIVE mode, the lock that dropping a foreign
/// key to it takes (see [`detach`] for why first).
fn with_sessions_locked<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    with_lock_timeout(conn, DDL_LOCK_TIMEOUT_MS, |conn| {
        diesel::sql_query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE").execute(conn)?;
        f(conn)
    })
}

/// A foreign key: its table and its name, both quoted as SQL needs them.
#[derive(QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
}

/// The foreign keys of `tables`.
fn foreign_keys_of(conn: &mut PgConnection, tables: &[String]) -> QueryResult<Vec<ForeignKey>> {
    diesel::sql_query(
        "SELECT conrelid::regclass::text AS table_name, quote_ident(conname) AS name
           FROM pg_constraint
          WHERE contype = 'f' AND conrelid = ANY ($1::text[]::regclass[])",
    )
    .bind::<Array<Text>, _>(tables)
    .load(conn)
}

/// Drops `keys` (in the caller's transaction); returns how many.
fn drop_keys(conn: &mut PgConnection, keys: &[ForeignKey]) -> QueryResult<usize> {
    for key in keys {
        diesel::sql_query(format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            key.table_name, key.name
        ))
        .execute(conn)?;
    }
    Ok(keys.len())
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

/// [`ddl`] for `DETACH PARTITION … FINALIZE` (of a detach that an earlier
/// version began `CONCURRENTLY` and did not finish), which cannot run in a
/// transaction block, so no `SET LOCAL` can shorten its wait (and a session
/// `SET` would outlive it behind a pooler): the deadlines of the role bound
/// it (`database.lock_timeout_ms`).
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
