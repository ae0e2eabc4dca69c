//! The partitions of `refresh_tokens` (SPEC 9): one per UTC day of
//! `expires_at`, made ahead so that an insert always finds one, and dropped
//! whole once their day has ended and nothing can need their rows, so that
//! removing expired rows costs the same for ten rows or ten million.
//!
//! The SQL functions of the migration (`authgate_make_refresh_token_partitions`
//! and its helpers) own the making, so that `authgate migrate`, every sweeper
//! pass and an insert that found no partition make them the same way. This
//! module decides when, and owns the dropping (`dropping.rs`): a detach
//! in a transaction that locks `sessions` first (see `detach`), and drops
//! the detached table's foreign key, then `DROP TABLE` of a table that
//! references nothing, so that freeing its files holds up no one; each
//! under a short `SET LOCAL lock_timeout`, and what times out is retried
//! at the next pass. Nothing here sets anything on the session, so it all
//! works through a transaction pooler.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Bool, Double, Text, Timestamptz};

mod dropping;
pub use dropping::{
    count_rows, drop_boundary, drop_ended, droppable, Dropped, DROP_AT_ONCE, EXACT_COUNT_PAGES,
    SAMPLE_PAGES,
};

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
    insert: impl FnMut(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    with_partitions_for(conn, expires_at, expires_at, insert)
}

/// [`with_partition_for`] for rows whose `expires_at` lie between `first`
/// and `last`: the partitions of that whole range are made.
pub fn with_partitions_for<T>(
    conn: &mut PgConnection,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    mut insert: impl FnMut(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    match insert(conn) {
        Err(err) if is_missing_partition(&err) => {
            let made = make(conn, first, last + Duration::seconds(1))?;
            log::warn!(
                "no refresh_tokens partition for expires_at {first}..={last}; made {made} \
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
