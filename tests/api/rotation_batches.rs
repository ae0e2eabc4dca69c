//! Reissues in batches (`sessions::RotationQueue`): the rotations that queue
//! while a batch runs go to PostgreSQL together, in one statement, and each
//! keeps its own preconditions; a batch that fails sends its requests down
//! the full transaction. And the statement finds the presented row through
//! the token-hash index whatever the statistics say.

use authgate::db::{build_pool, Db};
use authgate::sessions::{
    rotate_in_one_statement, MintedRotation, RotationQueue, TokenIssuer, MOST_PER_BATCH,
};
use authgate::tokens::{TokenHash, TokenKind, VerifiedToken};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use futures_util::future::join_all;

use crate::helpers::{test_settings, Pair, TestApp};

/// A queue over the app's database with a pool of `pool_size` (a quarter
/// of it, rounded up, sends batches at once).
async fn queue_of(app: &TestApp, pool_size: u32) -> RotationQueue {
    let mut settings = test_settings(&app.db_url);
    settings.database.pool_size = pool_size;
    let database = settings.database;
    let db =
        tokio::task::spawn_blocking(move || Db::new(build_pool(&database).unwrap(), &database))
            .await
            .unwrap();
    RotationQueue::new(db)
}

fn issuer_of(app: &TestApp) -> TokenIssuer {
    TokenIssuer::new(&app.settings.jwt, app.settings.session_policy())
}

/// The rotation of `refresh`, minted as the exchange would.
fn mint(app: &TestApp, issuer: &TokenIssuer, refresh: &str) -> (VerifiedToken, MintedRotation) {
    let token = issuer.keys().verify(refresh, TokenKind::Refresh).unwrap();
    let far = app.clock.now() + chrono::Duration::hours(1);
    let rotation = MintedRotation::mint(
        issuer,
        &token,
        &TokenHash::of(refresh),
        app.clock.now(),
        far,
    );
    (token, rotation)
}

fn rows_of_session(app: &TestApp, session_id: &str) -> i64 {
    let session_id = uuid::Uuid::parse_str(session_id).unwrap();
    crate::sweeper::count(
        app,
        &format!("SELECT count(*) AS n FROM refresh_tokens WHERE session_id = '{session_id}'"),
    )
}

// A current-thread runtime: every rotation below is queued before the task
// that sends the first batch runs, so the batches are known in advance.
#[tokio::test]
async fn rotations_queued_together_go_in_one_statement_and_every_chain_goes_on() {
    let app = crate::helpers::spawn_app().await;
    let queue = queue_of(&app, 4).await; // one batch at a time
    let issuer = issuer_of(&app);
    let n = MOST_PER_BATCH + 4;
    let mut firsts = Vec::new();
    for _ in 0..n {
        firsts.push(app.logged_in().await.1);
    }
    let minted: Vec<_> = firsts
        .iter()
        .map(|p| mint(&app, &issuer, &p.refresh))
        .collect();

    let answers = join_all(minted.iter().map(|(_, m)| queue.rotate(m.args.clone()))).await;

    assert_eq!(
        queue.batches_sent(),
        2,
        "{MOST_PER_BATCH} in the first, 4 in the second"
    );
    for ((first, (token, rotation)), answer) in firsts.iter().zip(minted).zip(answers) {
        let rotated = answer
            .unwrap()
            .expect("a current token rotates in its batch");
        let second = rotation.into_pair(&issuer, &token, &rotated);
        let second = Pair::from_json(serde_json::to_value(second).unwrap());
        assert_eq!(second.session_id, first.session_id);
        assert_eq!(rows_of_session(&app, &first.session_id), 2);
        // The new pair is the session's current one: it works, and it moves on.
        assert_eq!(
            app.me(&second.access).await.status(),
            reqwest::StatusCode::OK
        );
        app.reissue_ok(&second.refresh).await;
    }
}

#[tokio::test]
async fn in_one_batch_each_rotation_keeps_its_own_preconditions() {
    let app = crate::helpers::spawn_app().await;
    let queue = queue_of(&app, 4).await;
    let issuer = issuer_of(&app);
    let (_, current) = app.logged_in().await;
    let (_, logged_out) = app.logged_in().await;
    let (promoted_email, promoted) = app.logged_in().await;
    let (_, also_current) = app.logged_in().await;
    assert!(app
        .post_with("/auth/logout", &logged_out.access)
        .await
        .status()
        .is_success());
    diesel::sql_query("UPDATE users SET roles = '{admin}' WHERE email = $1")
        .bind::<Text, _>(&promoted_email)
        .execute(&mut app.db())
        .unwrap();
    let presented = [
        &current.refresh,
        &current.refresh, // the same token twice in one batch
        &logged_out.refresh,
        &promoted.refresh,
        &also_current.refresh,
    ];
    let minted: Vec<_> = presented.iter().map(|r| mint(&app, &issuer, r)).collect();

    let answers = join_all(minted.iter().map(|(_, m)| queue.rotate(m.args.clone()))).await;

    assert_eq!(queue.batches_sent(), 1, "all five in one batch");
    let rotated: Vec<bool> = answers.into_iter().map(|a| a.unwrap().is_some()).collect();
    assert_eq!(rotated, [true, false, false, false, true]);
    assert_eq!(
        rows_of_session(&app, &current.session_id),
        2,
        "one successor, not two"
    );
    assert_eq!(rows_of_session(&app, &promoted.session_id), 1);
    // What the batch left alone, the full path decides as before.
    crate::helpers::assert_unauthorized(app.reissue(&logged_out.refresh).await, "session_revoked")
        .await;
    let renewed = app.reissue_ok(&promoted.refresh).await;
    assert_eq!(renewed.session_id, promoted.session_id);
}

#[tokio::test]
async fn in_one_batch_a_session_moves_on_once_even_when_two_of_its_tokens_are_unspent() {
    let app = crate::helpers::spawn_app().await;
    let queue = queue_of(&app, 4).await;
    let issuer = issuer_of(&app);
    let (_, first) = app.logged_in().await;
    let second = app.reissue_ok(&first.refresh).await;
    // A forked chain, which rotation never makes: both tokens unspent.
    diesel::sql_query("UPDATE refresh_tokens SET spent_at = NULL WHERE session_id = $1::uuid")
        .bind::<Text, _>(&first.session_id)
        .execute(&mut app.db())
        .unwrap();
    let minted: Vec<_> = [&first.refresh, &second.refresh]
        .iter()
        .map(|r| mint(&app, &issuer, r))
        .collect();

    let answers = join_all(minted.iter().map(|(_, m)| queue.rotate(m.args.clone()))).await;

    assert_eq!(queue.batches_sent(), 1, "both in one batch");
    let rotated: Vec<bool> = answers.into_iter().map(|a| a.unwrap().is_some()).collect();
    assert_eq!(rotated, [true, false], "the second goes the full way");
    assert_eq!(
        rows_of_session(&app, &first.session_id),
        3,
        "one successor in the batch, not one for each"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_that_fails_sends_its_requests_down_the_full_transaction() {
    let app = crate::helpers::spawn_app().await;
    let (_, first) = app.logged_in().await;
    diesel::sql_query(
        "DROP FUNCTION authgate_rotate_refresh_tokens(uuid[], uuid[], timestamptz[], bytea[], \
         uuid[], timestamptz[], bytea[], jsonb, timestamptz[], timestamptz[])",
    )
    .execute(&mut app.db())
    .unwrap();

    let second = app.reissue_ok(&first.refresh).await;

    assert_eq!(second.session_id, first.session_id);
    crate::helpers::assert_unauthorized(app.reissue(&first.refresh).await, "token_reused").await;
}

/// Index scans of `partition` by this connection's transaction so far:
/// (token-hash index, expires_at index).
fn index_scans(conn: &mut PgConnection, partition: &str) -> QueryResult<(i64, i64)> {
    #[derive(QueryableByName)]
    struct Scans {
        #[diesel(sql_type = BigInt)]
        by_hash: i64,
        #[diesel(sql_type = BigInt)]
        by_expiry: i64,
    }
    let scans: Scans = diesel::sql_query(
        "SELECT coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid))
                         FILTER (WHERE c.relname LIKE '%token_hash%'), 0)::int8 AS by_hash,
                coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid))
                         FILTER (WHERE c.relname LIKE '%expires_at_idx'
                                  AND c.relname NOT LIKE '%token_hash%'), 0)::int8 AS by_expiry
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE i.indrelid = $1::regclass",
    )
    .bind::<Text, _>(partition)
    .get_result(conn)?;
    Ok((scans.by_hash, scans.by_expiry))
}

// On a partition without statistics, a check written on the column
// (`r.expires_at > now`) gave the expires_at index two conditions, and the
// plan the function keeps for its connection read every row of that second.
#[tokio::test(flavor = "multi_thread")]
async fn the_presented_row_is_found_through_the_token_hash_index_on_a_partition_never_analysed() {
    let app = crate::helpers::spawn_app().await;
    let (_, first) = app.logged_in().await;
    let issuer = issuer_of(&app);
    let token = issuer
        .keys()
        .verify(&first.refresh, TokenKind::Refresh)
        .unwrap();
    #[derive(QueryableByName)]
    struct Partition {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let partition = diesel::sql_query(
        "SELECT tableoid::regclass::text AS name FROM refresh_tokens WHERE session_id = $1::uuid",
    )
    .bind::<Text, _>(&first.session_id)
    .get_result::<Partition>(&mut app.db())
    .unwrap()
    .name;

    // A new connection, so the function is planned now; in a transaction,
    // so that its index scans can be read before anything else's.
    let (rotated, scans) = tokio::task::block_in_place(|| {
        app.db()
            .transaction(|conn| {
                let rotated = rotate_in_one_statement(
                    conn,
                    &issuer,
                    &token,
                    &TokenHash::of(&first.refresh),
                    app.clock.now(),
                )?;
                Ok::<_, diesel::result::Error>((rotated, index_scans(conn, &partition)?))
            })
            .unwrap()
    });

    assert!(rotated.is_some());
    assert!(scans.0 >= 1, "the token-hash index was used: {scans:?}");
    assert_eq!(scans.1, 0, "the expires_at index was not: {scans:?}");
}

/// Sequential scans of `table` by this connection's transaction so far.
fn seq_scans(conn: &mut PgConnection, table: &str) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Scans {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let scans: Scans = diesel::sql_query("SELECT pg_stat_get_xact_numscans($1::regclass) AS n")
        .bind::<Text, _>(table)
        .get_result(conn)?;
    Ok(scans.n)
}

// The batch's plan is kept for the connection's life, made on whatever
// statistics there are: planned while sessions held a row or two, a join of
// the batch with sessions could be a scan of the whole table, and stay one
// as the table grows (inserts do not make PostgreSQL plan again; only
// ANALYZE does).
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_reads_sessions_and_users_by_their_keys_however_small_they_were_when_planned() {
    let app = crate::helpers::spawn_app().await;
    let (_, first) = app.logged_in().await;
    let issuer = issuer_of(&app);
    let rotate = |conn: &mut PgConnection, refresh: &str| {
        let token = issuer.keys().verify(refresh, TokenKind::Refresh).unwrap();
        conn.transaction(|conn| {
            let rotated = rotate_in_one_statement(
                conn,
                &issuer,
                &token,
                &TokenHash::of(refresh),
                app.clock.now(),
            )?
            .expect("a current token rotates");
            let scans = (seq_scans(conn, "sessions")?, seq_scans(conn, "users")?);
            Ok::<_, diesel::result::Error>((rotated, scans))
        })
        .unwrap()
    };

    let scans = tokio::task::block_in_place(|| {
        let mut conn = app.db();
        // Planned now, with one session and one user in the tables.
        let (second, _) = rotate(&mut conn, &first.refresh);
        diesel::sql_query(
            "WITH u AS (INSERT INTO users (email, email_canonical, password_hash)
                        SELECT 'filler' || g || '@x.io', 'filler' || g || '@x.io', 'x'
                          FROM generate_series(1, 5000) g RETURNING id)
             INSERT INTO sessions (user_id, created_at, last_used_at, expires_at)
             SELECT id, now(), now(), now() + interval '30 days' FROM u",
        )
        .execute(&mut conn)
        .unwrap();
        let second = Pair::from_json(serde_json::to_value(second).unwrap());
        rotate(&mut conn, &second.refresh).1
    });

    assert_eq!(scans, (0, 0), "sequential scans of sessions, users");
}
