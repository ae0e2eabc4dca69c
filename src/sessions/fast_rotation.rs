//! Reissue in one round trip, for the common case (SPEC 4.3's "refresh token
//! valid and current"): the presented token is spent, its successor stored
//! and the session touched by a single auto-committed statement.
//!
//! The statement carries out the `Rotate` verdict of [`super::judge`] only
//! when every precondition of that verdict holds in the database at that
//! moment: the session is ours, live and not revoked, the presented row is
//! current (unspent, unrevoked, unexpired; found by its hash and its `exp`,
//! the partition key, so that one partition is read), and nothing would differ from the
//! slow path (the user's roles are those of the presented token, and the
//! session ends after the new token would). Anything else, including a
//! concurrent rotation that got there first, matches no row, and the caller
//! falls back to the full transaction, which decides by `judge`. A
//! statement that reaches PostgreSQL only after its request gave up (a
//! frozen server) does nothing ([`crate::db::commit_by`]). Like the
//! slow path, it locks the session row before it touches a token row, so the
//! two paths serialise on the session and cannot deadlock.
//!
//! The statement is a server-side function: sent as text without a
//! statement cache (PgBouncer, SPEC 9), the same query was planned anew at
//! every rotation, and planning cost more CPU than running it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Text, Timestamptz, Uuid as SqlUuid};

use super::issuer::{Subject, TokenIssuer, TokenPair};
use crate::tokens::{TokenHash, VerifiedToken};

/// The statement: `authgate_rotate_refresh_token` (migration
/// `2026-11-27-000001`), whose plan PostgreSQL keeps from call to call.
const ROTATE: &str = "
    SELECT email, session_expires_at AS expires_at
      FROM authgate_rotate_refresh_token($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

#[derive(QueryableByName)]
struct Rotated {
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

/// Tries the one-statement rotation of a current, unexpired refresh token
/// (whose claims were verified). `Ok(None)`: some precondition does not
/// hold; run the full transaction instead.
pub fn rotate_in_one_statement(
    conn: &mut PgConnection,
    issuer: &TokenIssuer,
    token: &VerifiedToken,
    presented: &TokenHash,
    now: DateTime<Utc>,
) -> QueryResult<Option<TokenPair>> {
    let (claims, user_id, session_id) = (&token.claims, token.user_id, token.session_id);
    // The session's end is known only to the database: mint as if it were
    // far away, and let the statement refuse when it is not.
    let subject = Subject {
        user_id,
        email: "",
        roles: &claims.roles,
        session_id,
        session_end: DateTime::<Utc>::MAX_UTC,
    };
    let minted = issuer.mint_refresh(&subject, now);
    // Should no partition take the new row yet, nothing happened: the
    // partition is made and the statement sent again.
    let rotated: Option<Rotated> =
        crate::partitions::with_partition_for(conn, minted.expires_at, |conn| {
            diesel::sql_query(ROTATE)
                .bind::<SqlUuid, _>(session_id)
                .bind::<SqlUuid, _>(user_id)
                .bind::<Timestamptz, _>(now)
                .bind::<diesel::sql_types::Bytea, _>(presented)
                .bind::<SqlUuid, _>(minted.id)
                .bind::<Timestamptz, _>(minted.expires_at)
                .bind::<diesel::sql_types::Bytea, _>(&minted.hash)
                .bind::<Array<Text>, _>(&claims.roles)
                .bind::<Timestamptz, _>(crate::db::commit_by())
                .bind::<Timestamptz, _>(claims.expires_at())
                .get_result(conn)
                .optional()
        })?;
    Ok(rotated.map(|row| {
        let subject = Subject {
            email: &row.email,
            session_end: row.expires_at,
            ..subject
        };
        issuer.pair(&subject, minted.token, minted.expires_at, now)
    }))
}
