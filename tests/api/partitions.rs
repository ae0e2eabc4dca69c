//! SPEC 9: `refresh_tokens` partitioned by day of `expires_at`; partitions
//! made ahead (start-up/migrate, every pass, an insert that found none) and
//! dropped whole by the sweeper once nothing can need their rows.

use std::time::Duration;

use authgate::partitions::{self, Partition};
use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use crate::sweeper::{count, pass, settings};

fn partitions_of(app: &TestApp) -> Vec<Partition> {
    partitions::list(&mut app.db()).unwrap()
}

fn day(days_from_now: i64) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::days(days_from_now)
}

/// The partitions cover `[from, until)` without a gap.
fn assert_covered(parts: &[Partition], from: chrono::DateTime<Utc>, until: chrono::DateTime<Utc>) {
    let mut at = from;
    while at < until {
        let p = parts
            .iter()
            .find(|p| p.lower_bound <= at && at < p.upper_bound)
            .unwrap_or_else(|| panic!("no partition for {at}: {parts:?}"));
        at = p.upper_bound;
    }
}

/// A session of a new user whose only rows are `n` tokens that expired
/// `days_ago` days ago (in that day's partition, made for them), all by SQL.
fn expired_session(app: &TestApp, n: i64, days_ago: i64) -> String {
    let expired = day(-days_ago);
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let session: Id = diesel::sql_query(
        "WITH u AS (
             INSERT INTO users (email, email_canonical, password_hash)
             VALUES (gen_random_uuid() || '@x.io', gen_random_uuid() || '@x.io', 'x') RETURNING id)
         INSERT INTO sessions (user_id, created_at, last_used_at, expires_at)
         SELECT id, $1 - interval '1 day', $1 - interval '1 day', $1 + interval '30 days' FROM u
         RETURNING id::text AS id",
    )
    .bind::<Timestamptz, _>(expired)
    .get_result(&mut app.db())
    .unwrap();
    add_expired_rows(app, &session.id, n, days_ago);
    session.id
}

/// Adds `n` rows to `session` that expired `days_ago` days ago (in that
/// day's partition, made for them): a chain of rotated tokens and its last.
fn add_expired_rows(app: &TestApp, session: &str, n: i64, days_ago: i64) {
    let mut conn = app.db();
    let expired = day(-days_ago);
    partitions::make(&mut conn, expired, expired + chrono::Duration::seconds(1)).unwrap();
    diesel::sql_query(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at, spent_at)
         SELECT gen_random_uuid(), $1::uuid, sha256(($1 || $2 || g)::bytea), $2 - interval '1 day', $2,
                CASE WHEN g < $3 THEN $2 - interval '1 hour' END
           FROM generate_series(1, $3) g",
    )
    .bind::<Text, _>(session)
    .bind::<Timestamptz, _>(expired)
    .bind::<diesel::sql_types::Integer, _>(n as i32)
    .execute(&mut conn)
    .unwrap();
}

fn exists(app: &TestApp, table: &str) -> bool {
    count(
        app,
        &format!("SELECT count(*) AS n FROM pg_class WHERE oid = to_regclass('{table}')"),
    ) == 1
}

fn partition_of_day(app: &TestApp, days_ago: i64) -> Partition {
    let at = day(-days_ago);
    partitions_of(app)
        .into_iter()
        .find(|p| p.lower_bound <= at && at < p.upper_bound)
        .expect("the day's partition")
}

#[tokio::test]
async fn start_up_makes_partitions_for_the_token_lifetime_and_a_margin() {
    let app = spawn_app().await;
    let lifetime = app.settings.jwt.refresh_ttl_secs as i64;

    let parts = partitions_of(&app);

    assert_covered(
        &parts,
        Utc::now(),
        Utc::now() + chrono::Duration::seconds(lifetime) + partitions::AHEAD_MARGIN
            - chrono::Duration::minutes(1),
    );
    // One UTC day each, aligned on midnight.
    for p in &parts {
        assert_eq!(p.upper_bound - p.lower_bound, partitions::WIDTH, "{p:?}");
        assert_eq!(p.lower_bound.timestamp() % 86_400, 0, "{p:?}");
    }
}

/// Drops the partitions that start more than `days` days from now (for a
/// pass to make again).
pub fn drop_partitions_beyond(app: &TestApp, days: i64) {
    let mut conn = app.db();
    for p in partitions_of(app)
        .into_iter()
        .filter(|p| p.lower_bound > day(days))
    {
        diesel::sql_query(format!("DROP TABLE {}", p.name))
            .execute(&mut conn)
            .unwrap();
    }
}

#[tokio::test]
async fn a_pass_makes_the_partitions_ahead_again() {
    let app = spawn_app().await;
    drop_partitions_beyond(&app, 2);
    assert!(partitions_of(&app).iter().all(|p| p.lower_bound <= day(2)));

    pass(&app, &settings(100, 3600));

    let lifetime = chrono::Duration::seconds(app.settings.jwt.refresh_ttl_secs as i64);
    assert_covered(
        &partitions_of(&app),
        Utc::now(),
        Utc::now() + lifetime + partitions::AHEAD_MARGIN - chrono::Duration::minutes(1),
    );
}

#[tokio::test]
async fn a_pass_drops_a_partition_whose_day_ended_counts_its_rows_and_deletes_the_sessions_left_empty(
) {
    let app = spawn_app().await;
    let (_, live) = app.logged_in().await;
    let old = expired_session(&app, 250, 3);
    let partition = partition_of_day(&app, 3);

    let report = pass(&app, &settings(100, 3600));

    assert_eq!((report.expired, report.sessions), (250, 1));
    assert!(
        !exists(&app, &partition.name),
        "{} still exists",
        partition.name
    );
    assert!(partitions_of(&app).iter().all(|p| p.name != partition.name));
    let gone = format!("SELECT count(*) AS n FROM sessions WHERE id = '{old}'");
    assert_eq!(count(&app, &gone), 0);
    app.reissue_ok(&live.refresh).await;
}

#[tokio::test]
async fn a_pass_drops_every_ended_partition_and_hands_each_session_over_once_whatever_the_batch() {
    let app = spawn_app().await;
    // Sessions with rows in several of the days that ended, and one of them
    // still has a live token: it stays, with its rows in live partitions.
    let (_, live) = app.logged_in().await;
    let live_session = count(&app, "SELECT count(*) AS n FROM sessions");
    assert_eq!(live_session, 1);
    let across = expired_session(&app, 4, 3);
    add_expired_rows(&app, &across, 5, 4);
    add_expired_rows(&app, &across, 6, 5);
    let alone = expired_session(&app, 2, 5);
    let mut more = Vec::new();
    for days_ago in [3, 4] {
        more.push(expired_session(&app, 1, days_ago));
    }
    let ended: Vec<Partition> = [3, 4, 5].map(|d| partition_of_day(&app, d)).to_vec();

    for batch in [1, 100] {
        let report = pass(&app, &settings(batch, 3600));
        if batch == 1 {
            assert_eq!(
                (report.expired, report.sessions),
                (4 + 5 + 6 + 2 + 1 + 1, 4)
            );
        } else {
            assert_eq!(
                (report.expired, report.sessions),
                (0, 0),
                "a second pass: nothing left"
            );
        }
    }
    for partition in &ended {
        assert!(
            !exists(&app, &partition.name),
            "{} still exists",
            partition.name
        );
    }
    for id in [&across, &alone, &more[0], &more[1]] {
        let gone = format!("SELECT count(*) AS n FROM sessions WHERE id = '{id}'");
        assert_eq!(count(&app, &gone), 0, "session {id} stays");
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM sessions"), 1);
    app.reissue_ok(&live.refresh).await;
}

#[tokio::test]
async fn rows_are_counted_exactly_in_a_small_table_and_estimated_from_few_pages_in_a_large_one() {
    let app = spawn_app().await;
    let mut conn = app.db();
    let make = |conn: &mut PgConnection, table: &str, rows: i64| {
        diesel::sql_query(format!(
            "CREATE TABLE {table} AS SELECT g AS n, repeat('x', 120) AS pad FROM generate_series(1, {rows}) g"
        ))
        .execute(conn)
        .unwrap();
    };
    make(&mut conn, "small_one", 1_234);
    assert_eq!(
        partitions::count_rows(&mut conn, "small_one").unwrap(),
        1_234
    );

    // 160,000 rows of some 160 bytes: 3,300 pages, past the exact count.
    let rows = 160_000.0;
    make(&mut conn, "large_one", rows as i64);
    let pages = count(
        &app,
        "SELECT (pg_relation_size('large_one') / 8192)::bigint AS n",
    ) as f64;
    assert!(pages > partitions::EXACT_COUNT_PAGES, "{pages} pages");
    let within = |estimate: u64, tolerance: f64| {
        let error = (estimate as f64 - rows).abs() / rows;
        assert!(error <= tolerance, "estimated {estimate} of {rows} rows");
    };
    // Never analyzed (autovacuum may have been quicker: either way, an
    // estimate from a bounded read).
    within(
        partitions::count_rows(&mut conn, "large_one").unwrap(),
        0.15,
    );
    diesel::sql_query("ANALYZE large_one")
        .execute(&mut conn)
        .unwrap();
    within(
        partitions::count_rows(&mut conn, "large_one").unwrap(),
        0.02,
    );
}

#[tokio::test]
async fn a_partition_stays_while_an_access_token_issued_with_its_rows_may_be_alive() {
    // Access tokens live three days: a row that expired two days ago may
    // have been issued beside one that is still alive.
    let app = spawn_app_with(|s| s.jwt.access_ttl_secs = 3 * 86_400).await;
    expired_session(&app, 3, 2);
    let partition = partition_of_day(&app, 2);

    pass(&app, &settings(100, 3600));

    assert!(exists(&app, &partition.name));
    assert!(partitions_of(&app).iter().any(|p| p.name == partition.name));
}

#[tokio::test]
async fn a_table_detached_by_an_earlier_pass_is_dropped_and_counted_by_the_next() {
    let app = spawn_app().await;
    let old = expired_session(&app, 7, 4);
    let partition = partition_of_day(&app, 4);
    // An earlier pass detached it, then failed before its drop.
    diesel::sql_query(format!(
        "ALTER TABLE refresh_tokens DETACH PARTITION {}",
        partition.name
    ))
    .execute(&mut app.db())
    .unwrap();

    let report = pass(&app, &settings(2, 3600));

    assert_eq!((report.expired, report.sessions), (7, 1));
    assert!(!exists(&app, &partition.name));
    let gone = format!("SELECT count(*) AS n FROM sessions WHERE id = '{old}'");
    assert_eq!(count(&app, &gone), 0);
}

#[tokio::test]
async fn a_dry_run_counts_the_rows_of_a_partition_it_would_drop_and_drops_nothing() {
    let app = spawn_app().await;
    expired_session(&app, 12, 3);
    let partition = partition_of_day(&app, 3);

    let outcome = authgate::sweeper::run_pass(
        &mut app.db(),
        &mut app.db(),
        &settings(100, 3600),
        crate::sweeper::access_ttl(&app),
        true,
    )
    .unwrap();

    let authgate::sweeper::PassOutcome::Done(report) = outcome else {
        panic!("skipped")
    };
    assert_eq!(report.expired, 12);
    assert!(exists(&app, &partition.name));
}

#[tokio::test]
async fn logins_and_reissues_beyond_the_partitions_made_ahead_make_their_own() {
    let app = spawn_app().await;
    // Two months on, with no pass in between: no partition was made that far.
    app.advance(Duration::from_secs(60 * 86_400));

    let (_, pair) = app.logged_in().await;
    let next = app.reissue_ok(&pair.refresh).await;

    assert_eq!(next.session_id, pair.session_id);
    let far = Utc::now() + chrono::Duration::days(60 + 14);
    assert!(partitions_of(&app)
        .iter()
        .any(|p| p.lower_bound <= far && far < p.upper_bound));
    let rows = format!(
        "SELECT count(*) AS n FROM refresh_tokens WHERE session_id = '{}'",
        pair.session_id
    );
    assert_eq!(count(&app, &rows), 2);
}

#[tokio::test]
async fn the_reissue_look_up_reads_one_partition() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let claims = authgate::tokens::TokenKeys::new(
        &app.settings.jwt.secret,
        &app.settings.jwt.issuer,
        &app.settings.jwt.audience,
    )
    .verify(&pair.refresh, authgate::tokens::TokenKind::Refresh)
    .unwrap()
    .claims;

    let plan: Vec<Line> = diesel::sql_query(
        "EXPLAIN SELECT * FROM refresh_tokens
          WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND expires_at = $2",
    )
    .bind::<Text, _>(&pair.refresh)
    .bind::<Timestamptz, _>(claims.expires_at())
    .load(&mut app.db())
    .unwrap();

    let plan: String = plan.into_iter().map(|l| l.line + "\n").collect();
    assert_eq!(plan.matches(" on refresh_tokens_p").count(), 1, "{plan}");
    assert!(!plan.contains("Append"), "{plan}");
}

#[tokio::test]
async fn a_drop_does_not_wait_for_reissues_in_flight_on_sessions() {
    let app = spawn_app().await;
    expired_session(&app, 3, 3);
    let partition = partition_of_day(&app, 3);
    // A reissue in flight: its transaction has updated a session and not
    // committed yet. PostgreSQL frees a dropped table's files at commit,
    // before it lets go of its locks, so a drop that locked `sessions`
    // would make every reissue wait for the file system.
    let mut in_flight = app.db();
    let mut conn = app.db();
    let mut began = false;

    let dropped = partitions::drop_ended(
        &mut conn,
        chrono::Duration::hours(1),
        100,
        |_conn, _sessions| {
            if !began {
                in_flight
                    .batch_execute(
                        "BEGIN; LOCK TABLE sessions IN ROW EXCLUSIVE MODE; \
                         UPDATE sessions SET last_used_at = last_used_at",
                    )
                    .unwrap();
                began = true;
            }
            Ok(0)
        },
    )
    .unwrap();
    in_flight.batch_execute("ROLLBACK").unwrap();

    assert!(began, "the sessions were handed over before the drop");
    assert_eq!((dropped.partitions, dropped.rows), (1, 3));
    assert!(!exists(&app, &partition.name));
}

#[tokio::test]
async fn a_detach_that_cannot_lock_sessions_in_time_leaves_the_partition_whole_for_the_next_pass() {
    let app = spawn_app().await;
    expired_session(&app, 3, 3);
    let partition = partition_of_day(&app, 3);
    // A reissue in flight holds `sessions`, which it locks before
    // `refresh_tokens`: the detach must not take the partition first and
    // then wait for `sessions` (each would wait for the other).
    let mut in_flight = app.db();
    in_flight
        .batch_execute("BEGIN; UPDATE sessions SET last_used_at = last_used_at")
        .unwrap();

    let started = std::time::Instant::now();
    let dropped =
        partitions::drop_ended(&mut app.db(), chrono::Duration::hours(1), 100, |_, _| Ok(0))
            .unwrap();
    let waited = started.elapsed();
    in_flight.batch_execute("ROLLBACK").unwrap();

    assert_eq!(dropped, partitions::Dropped::default());
    let still = partition_of_day(&app, 3);
    assert_eq!(still.name, partition.name);
    assert!(!still.detach_pending, "left half-detached: {still:?}");
    assert!(
        waited < Duration::from_millis(900),
        "waited {waited:?}, more than the sweeper's short lock timeout"
    );

    let dropped =
        partitions::drop_ended(&mut app.db(), chrono::Duration::hours(1), 100, |_, _| Ok(0))
            .unwrap();
    assert_eq!((dropped.partitions, dropped.rows), (1, 3));
    assert!(!exists(&app, &partition.name));
}
