//! Requests that wait for a pooled connection get one in the order they
//! asked, and give up at their deadline (`db::run_blocking`).

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use authgate::db::{build_pool, run_blocking, Db, DbUnavailable};
use futures_util::FutureExt;

use crate::helpers::{new_database, test_settings};

/// A `Db` of one connection on a fresh database, with the given deadline.
async fn one_connection_db(deadline_ms: u64) -> Db {
    let url = new_database(std::env::var("DATABASE_URL").unwrap()).await;
    let mut settings = test_settings(&url);
    settings.database.pool_size = 1;
    settings.database.request_deadline_ms = deadline_ms;
    let database = settings.database.clone();
    tokio::task::spawn_blocking(move || Db::new(build_pool(&database).unwrap(), &database))
        .await
        .unwrap()
}

/// Holds the one connection of `db` until the returned sender is dropped or
/// sent to; returns once it is held.
async fn hold_the_connection(db: &Db) -> mpsc::Sender<()> {
    let (release, released) = mpsc::channel::<()>();
    let (held, is_held) = tokio::sync::oneshot::channel();
    let db = db.clone();
    tokio::spawn(async move {
        run_blocking(&db, move |_conn| {
            held.send(()).unwrap();
            let _ = released.recv();
            Ok::<_, DbUnavailable>(())
        })
        .await
    });
    is_held.await.unwrap();
    release
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_requests_get_the_connection_in_the_order_they_asked() {
    let db = one_connection_db(10_000).await;
    let release = hold_the_connection(&db).await;

    let order = Arc::new(Mutex::new(Vec::new()));
    let waiters: Vec<_> = (0..8)
        .map(|i| {
            let order = order.clone();
            run_blocking(&db, move |_conn| {
                order.lock().unwrap().push(i);
                Ok::<_, DbUnavailable>(())
            })
        })
        .collect();
    // join_all polls its futures in order the first time: each one asks
    // for the connection before the next, and none can have it yet.
    let mut all = Box::pin(futures_util::future::join_all(waiters));
    assert!((&mut all).now_or_never().is_none());

    release.send(()).unwrap();
    for result in all.await {
        result.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_waiting_for_the_connection_gives_up_at_its_deadline() {
    let db = one_connection_db(300).await;
    let _release = hold_the_connection(&db).await;

    let started = Instant::now();
    let result = run_blocking(&db, |_conn| Ok::<_, DbUnavailable>(())).await;
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(DbUnavailable::Deadline(_))),
        "{result:?}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "waited {waited:?}"
    );
}
