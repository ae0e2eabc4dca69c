//! SPEC 9 (and 5's lock clause): authgate behind PgBouncer in transaction
//! pooling mode. The sweeper's one pass at a time, across instances, on
//! PostgreSQL and through the pooler; the deadlines of SPEC 6 through the
//! pooler. (Revocation, rotation races and login limits across instances run
//! behind PgBouncer too, in their own files.)

use std::sync::mpsc;
use std::time::{Duration, Instant};

use authgate::sweeper::{run_pass, while_holding_pass_lock, PassOutcome, LOCK_KEY};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::StatusCode;

use crate::helpers::{assert_error, start, Setup, TestApp, PASSWORD};
use crate::sweeper::{access_ttl, settings};

on_both_setups!(
    one_sweeper_pass_runs_at_a_time_across_instances,
    a_crashed_pass_holder_does_not_block_the_next_pass,
    a_pass_longer_than_the_idle_timeout_keeps_its_lock,
);

/// A connection made the way the instance makes its own: to
/// `database.url` (PgBouncer, in the pooled setups).
fn instance_connection(app: &TestApp) -> PgConnection {
    authgate::db::establish(&app.settings.database.url).expect("connect as the instance does")
}

/// Runs a pass on `app`'s database as an instance would, on a blocking
/// thread.
async fn pass_on(app: &TestApp) -> PassOutcome {
    let url = app.settings.database.url.clone();
    let sweeper = settings(100, 3600);
    let lifetimes = access_ttl(app);
    tokio::task::spawn_blocking(move || {
        let mut conn = authgate::db::establish(&url).unwrap();
        let mut lock = authgate::db::establish(&url).unwrap();
        run_pass(&mut conn, &mut lock, &sweeper, lifetimes, false).unwrap()
    })
    .await
    .unwrap()
}

/// Holds the pass lock from `app`'s side (a pass in progress) until told to
/// let go; returns once it holds it.
fn hold_pass_lock(
    app: &TestApp,
    hold_for: Option<Duration>,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<Option<()>>) {
    let mut lock = instance_connection(app);
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        while_holding_pass_lock(&mut lock, || {
            held_tx.send(()).unwrap();
            match hold_for {
                Some(time) => std::thread::sleep(time),
                None => {
                    let _ = release_rx.recv_timeout(Duration::from_secs(30));
                }
            }
        })
        .unwrap()
    });
    held_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the first pass takes the lock");
    (release_tx, holder)
}

async fn one_sweeper_pass_runs_at_a_time_across_instances(setup: Setup) {
    let one = setup.spawn().await;
    let two = start(one.settings.clone()).await;
    let (release, holder) = hold_pass_lock(&one, None);

    let beside = pass_on(&two).await;

    assert_eq!(beside, PassOutcome::Skipped);
    release.send(()).unwrap();
    assert_eq!(holder.join().unwrap(), Some(()));
    assert!(matches!(pass_on(&two).await, PassOutcome::Done(_)));
    // The lock went with its transaction: nothing is left on any server
    // connection.
    assert_eq!(advisory_locks_held(&one), 0);
}

async fn a_crashed_pass_holder_does_not_block_the_next_pass(setup: Setup) {
    let one = setup.spawn().await;
    let two = start(one.settings.clone()).await;
    // A pass that took the lock, then its process died: its connection
    // closes in the middle of the transaction.
    let mut crashed = instance_connection(&one);
    crashed
        .batch_execute(&format!(
            "BEGIN; SELECT pg_try_advisory_xact_lock({LOCK_KEY})"
        ))
        .unwrap();
    assert_eq!(pass_on(&two).await, PassOutcome::Skipped);

    drop(crashed);

    let started = Instant::now();
    loop {
        match pass_on(&two).await {
            PassOutcome::Done(_) => break,
            PassOutcome::Skipped => {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the dead holder still blocks passes"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn a_pass_longer_than_the_idle_timeout_keeps_its_lock(setup: Setup) {
    // The lock's transaction sits idle while the pass works on the other
    // connection; its heartbeat keeps it from being ended as idle.
    let one = setup.spawn().await;
    let two = start(one.settings.clone()).await;
    let idle = Duration::from_millis(authgate::sweeper::LOCK_HOLDER_IDLE_MS);
    let (_, holder) = hold_pass_lock(&one, Some(idle + Duration::from_secs(2)));

    tokio::time::sleep(idle + Duration::from_secs(1)).await;
    let beside = pass_on(&two).await;

    assert_eq!(beside, PassOutcome::Skipped);
    assert_eq!(holder.join().unwrap(), Some(()));
}

/// Advisory locks granted in the test's database right now.
fn advisory_locks_held(app: &TestApp) -> i64 {
    crate::sweeper::count(
        app,
        "SELECT count(*) AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
          WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
}

#[tokio::test]
async fn every_server_connection_behind_pgbouncer_starts_with_the_deadlines() {
    // The deadlines are defaults of the role in the database, so any
    // session there has them, whoever opened it and whatever it ran before.
    let app = Setup::Pooled
        .spawn_with(|s| {
            s.database.statement_timeout_ms = 1400;
            s.database.lock_timeout_ms = 900;
        })
        .await;
    app.logged_in().await;

    let mut through_pooler = instance_connection(&app);
    for _ in 0..5 {
        #[derive(QueryableByName)]
        struct Deadlines {
            #[diesel(sql_type = diesel::sql_types::Text)]
            statement: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            lock: String,
        }
        let now: Deadlines = diesel::sql_query(
            "SELECT current_setting('statement_timeout') AS statement,
                    current_setting('lock_timeout') AS lock",
        )
        .get_result(&mut through_pooler)
        .unwrap();
        assert_eq!(
            (now.statement.as_str(), now.lock.as_str()),
            ("1400ms", "900ms")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_pgbouncer_a_table_locked_by_someone_else_gives_503_within_2_seconds() {
    let app = Setup::Pooled.spawn().await;
    let (email, pair) = app.logged_in().await;
    let db_url = app.db_url.clone();
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    // A migration, say, holding an exclusive lock on `sessions`.
    let holder = std::thread::spawn(move || {
        let mut conn = authgate::db::establish(&db_url).unwrap();
        conn.batch_execute("SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0")
            .unwrap();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::sql_query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE").execute(conn)?;
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(30));
            Ok(())
        })
        .unwrap();
    });
    locked_rx.recv().unwrap();

    let requests = vec![
        app.client
            .post(app.url("/auth/login"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD})),
        app.client
            .post(app.url("/auth/reissue"))
            .json(&serde_json::json!({"refresh_token": pair.refresh})),
        app.client
            .post(app.url("/auth/logout"))
            .bearer_auth(&pair.access),
    ];
    let timed = requests.into_iter().map(|request| async move {
        let started = Instant::now();
        let response = request.send().await.expect("an answer");
        (started.elapsed(), response)
    });
    for (took, response) in futures_util::future::join_all(timed).await {
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    // And PostgreSQL gave up on them too (lock_timeout, through the pooler):
    // with the lock still held, nothing of ours waits on it for long.
    let started = Instant::now();
    while waiting_on_locks(&app) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "statements still wait on the lock server-side"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    app.reissue_ok(&pair.refresh).await;
}

/// Backends of the test's database waiting on a heavyweight lock.
fn waiting_on_locks(app: &TestApp) -> i64 {
    crate::sweeper::count(
        app,
        "SELECT count(*) AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
}
