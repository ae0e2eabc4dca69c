//! SPEC 9: `authgate migrate` converts an unpartitioned `refresh_tokens`
//! without losing a row, and the converted rows still work: a spent token
//! is still detected as reused, a current one still rotates.

use authgate::db::MIGRATIONS;
use authgate::sessions::{Subject, TokenIssuer};
use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text, Timestamptz, Uuid as SqlUuid};
use diesel_migrations::MigrationHarness;
use uuid::Uuid;

use crate::helpers::{assert_unauthorized, new_database, start, test_server_url, test_settings};
use crate::sweeper::count;

/// The first migration of the partitioned layout.
const PARTITIONED: &str = "2026-11-26-000002";

#[derive(QueryableByName)]
struct Digest {
    #[diesel(sql_type = Text)]
    digest: String,
}

/// Every row, every column, in one string.
fn digest(conn: &mut PgConnection) -> String {
    diesel::sql_query(
        "SELECT coalesce(string_agg(concat_ws('|', id, session_id, encode(token_hash, 'hex'),
                    issued_at, expires_at, spent_at, revoked_at), ',' ORDER BY id), '') AS digest
           FROM refresh_tokens",
    )
    .get_result::<Digest>(conn)
    .unwrap()
    .digest
}

#[tokio::test]
async fn migrate_converts_an_unpartitioned_table_without_losing_a_row_and_its_tokens_still_work() {
    let db_url = new_database(test_server_url()).await;
    let settings = test_settings(&db_url);
    let mut conn = PgConnection::establish(&db_url).unwrap();
    let pending = conn.pending_migrations(MIGRATIONS).unwrap();
    for migration in pending
        .iter()
        .take_while(|m| m.name().to_string().as_str() < PARTITIONED)
    {
        conn.run_migration(migration.as_ref()).unwrap();
    }
    assert_eq!(
        count_of(
            &mut conn,
            "SELECT count(*) AS n FROM pg_class WHERE relname = 'refresh_tokens' AND relkind = 'r'"
        ),
        1,
        "the old layout"
    );

    // Under the old layout: a live session with a spent and a current
    // token, a revoked session, and an expired one, all written by SQL.
    let issuer = TokenIssuer::new(&settings.jwt, settings.session_policy());
    let user = Uuid::new_v4();
    diesel::sql_query(
        "INSERT INTO users (id, email, email_canonical, password_hash) VALUES ($1, 'old@x.io', 'old@x.io', 'x')",
    )
    .bind::<SqlUuid, _>(user)
    .execute(&mut conn)
    .unwrap();
    let now = Utc::now();
    let mut session = |started: chrono::DateTime<Utc>, revoked: bool| {
        let id = Uuid::new_v4();
        diesel::sql_query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, revoked_reason)
             VALUES ($1, $2, $3, $3, $3 + interval '30 days',
                     CASE WHEN $4 THEN $3 END, CASE WHEN $4 THEN 'logout' END)",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<SqlUuid, _>(user)
        .bind::<Timestamptz, _>(started)
        .bind::<diesel::sql_types::Bool, _>(revoked)
        .execute(&mut conn)
        .unwrap();
        id
    };
    let live = session(now - Duration::hours(2), false);
    let revoked = session(now - Duration::hours(3), true);
    let expired = session(now - Duration::days(16), false);
    let mut token = |session_id: Uuid, at: chrono::DateTime<Utc>, spent: bool, revoked: bool| {
        let subject = Subject {
            user_id: user,
            email: "",
            roles: &[],
            session_id,
            session_end: at + Duration::days(30),
        };
        let minted = issuer.mint_refresh(&subject, at);
        diesel::sql_query(
            "INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at, spent_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN $4 + interval '1 hour' END,
                     CASE WHEN $7 THEN $4 END)",
        )
        .bind::<SqlUuid, _>(minted.id)
        .bind::<SqlUuid, _>(session_id)
        .bind::<Bytea, _>(&minted.hash)
        .bind::<Timestamptz, _>(minted.issued_at)
        .bind::<Timestamptz, _>(minted.expires_at)
        .bind::<diesel::sql_types::Bool, _>(spent)
        .bind::<diesel::sql_types::Bool, _>(revoked)
        .execute(&mut conn)
        .unwrap();
        minted.token
    };
    let spent = token(live, now - Duration::hours(2), true, false);
    let current = token(live, now - Duration::hours(1), false, false);
    token(revoked, now - Duration::hours(3), false, true);
    token(expired, now - Duration::days(16), false, false);
    let before = digest(&mut conn);

    // The rest of the migrations, as `serve` runs them at start-up.
    let app = start(settings).await;

    let mut conn = app.db();
    assert_eq!(digest(&mut conn), before, "every row, unchanged");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM refresh_tokens"), 4);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM pg_class WHERE relname = 'refresh_tokens' AND relkind = 'p'"
        ),
        1,
        "partitioned"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM pg_class WHERE relname LIKE 'refresh_tokens_unpartitioned%'"
        ),
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM active_sessions"),
        1,
        "the view reads the new table"
    );
    let next = app.reissue_ok(&current).await;
    assert_eq!(next.session_id, live.to_string());
    assert_unauthorized(app.reissue(&spent).await, "token_reused").await;
}

fn count_of(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<N>(conn).unwrap().n
}
