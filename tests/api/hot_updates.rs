//! The pages of `refresh_tokens` keep room for the update that spends each
//! row (migration 2026-12-08-000001): the partitions are made with a
//! fillfactor of 70, so that the update is HOT (it stays on the row's page
//! and adds no index entry) instead of a new version elsewhere plus an entry
//! in each of the four indexes.

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::helpers::{spawn_app, TestApp};
use crate::partitions::drop_partitions_beyond;
use crate::sweeper::{count, pass, settings};

/// The partitions whose storage options do not say `fillfactor=70`.
fn partitions_without_room(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT count(*) AS n FROM authgate_refresh_token_partitions() p
           JOIN pg_class c ON c.oid = p.partition
          WHERE NOT coalesce('fillfactor=70' = ANY (c.reloptions), false)",
    )
}

/// How many partitions `refresh_tokens` has.
fn partitions(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT count(*) AS n FROM authgate_refresh_token_partitions()",
    )
}

/// The SQL condition that picks the row of `token`.
fn row_of(token: &str) -> String {
    format!("token_hash = sha256(convert_to('{token}', 'UTF8'))")
}

/// The heap page that holds the row of `token`.
fn page_of(app: &TestApp, token: &str) -> i64 {
    count(
        app,
        &format!(
            "SELECT (ctid::text::point)[0]::bigint AS n FROM refresh_tokens WHERE {}",
            row_of(token)
        ),
    )
}

#[tokio::test]
async fn the_partitions_made_at_start_up_and_by_a_pass_leave_room_for_the_spending_update() {
    let app = spawn_app().await;
    let made = partitions(&app);
    assert!(made > 10);
    assert_eq!(partitions_without_room(&app), 0);

    // A pass makes again the partitions that are missing ahead.
    drop_partitions_beyond(&app, 2);
    assert!(partitions(&app) < made, "some partitions were dropped");
    pass(&app, &settings(100, 3600));

    assert!(partitions(&app) > 10);
    assert_eq!(partitions_without_room(&app), 0);
}

#[tokio::test]
async fn a_reissue_spends_the_token_on_its_own_page_even_after_later_tokens_filled_that_page() {
    let app = spawn_app().await;
    let (_, pair) = app.logged_in().await;
    let (_, other) = app.logged_in().await;
    // Later tokens of another session, of the same expiry day, fill the
    // page of the first token (and a few more): at fillfactor 100 it would
    // be full, and the update would have to write its new version elsewhere.
    diesel::sql_query(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at, expires_at)
         SELECT gen_random_uuid(), $1::uuid, sha256(('filler' || g)::bytea), r.issued_at, r.expires_at
           FROM refresh_tokens r, generate_series(1, 300) g
          WHERE r.session_id = $2::uuid",
    )
    .bind::<Text, _>(&other.session_id)
    .bind::<Text, _>(&pair.session_id)
    .execute(&mut app.db())
    .unwrap();
    let before = page_of(&app, &pair.refresh);
    let rows_on_its_page = count(
        &app,
        &format!(
            "SELECT count(*) AS n FROM refresh_tokens r
              WHERE (r.ctid::text::point)[0]::bigint = {before}
                AND r.tableoid = (SELECT tableoid FROM refresh_tokens WHERE {})",
            row_of(&pair.refresh)
        ),
    );
    // About 44 rows fill a page to 70% (62 to the brim).
    assert!(
        rows_on_its_page >= 40,
        "{rows_on_its_page} rows on its page"
    );

    app.reissue_ok(&pair.refresh).await;

    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM refresh_tokens WHERE {} AND spent_at IS NOT NULL",
                row_of(&pair.refresh)
            )
        ),
        1
    );
    assert_eq!(page_of(&app, &pair.refresh), before, "a HOT update");
}
