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
//! every rotation, and planning cost more CPU than running it. It takes a
//! batch: the rotations of requests that arrived while others were running
//! go to PostgreSQL together ([`super::RotationQueue`]), one statement and
//! one commit for all of them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea, Integer, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::issuer::{Subject, TokenIssuer, TokenPair};
use crate::tokens::{TokenHash, VerifiedToken};

/// The statement: `authgate_rotate_refresh_tokens` (migration
/// `2026-12-08-000002`), one set-based statement for the whole batch whose
/// plan PostgreSQL keeps from call to call: one element per session, the
/// sessions locked in the order of their ids.
const ROTATE: &str = "
    SELECT ord, email, session_expires_at AS expires_at
      FROM authgate_rotate_refresh_tokens($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)";

/// One rotation, minted and ready to be sent: what the statement needs to
/// carry it out. The new refresh token itself stays with the request.
#[derive(Debug, Clone)]
pub struct RotationArgs {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub now: DateTime<Utc>,
    /// The hash of the presented refresh token, and its `exp` (the
    /// partition key of its row).
    pub presented: TokenHash,
    pub presented_exp: DateTime<Utc>,
    /// The roles the presented token carries: the rotation holds only if
    /// they are still the user's.
    pub roles: Vec<String>,
    /// The successor's row.
    pub id: Uuid,
    pub hash: TokenHash,
    pub expires_at: DateTime<Utc>,
    /// After this wall-clock time the rotation must not happen
    /// ([`crate::db::commit_by`]).
    pub commit_by: DateTime<Utc>,
}

/// What the database tells of a rotation that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub email: String,
    /// The session's absolute end.
    pub session_end: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct RotatedRow {
    #[diesel(sql_type = Integer)]
    ord: i32,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

/// A rotation of a current, unexpired refresh token (whose claims were
/// verified), minted but not yet sent: its arguments, and the new token.
pub struct MintedRotation {
    pub args: RotationArgs,
    token: String,
}

impl MintedRotation {
    /// Mints the successor of `token`. The session's end is known only to
    /// the database: the token is minted as if it were far away, and the
    /// statement refuses when it is not.
    pub fn mint(
        issuer: &TokenIssuer,
        token: &VerifiedToken,
        presented: &TokenHash,
        now: DateTime<Utc>,
        commit_by: DateTime<Utc>,
    ) -> MintedRotation {
        let claims = &token.claims;
        let minted = issuer.mint_refresh(&open_ended(token), now);
        MintedRotation {
            args: RotationArgs {
                session_id: token.session_id,
                user_id: token.user_id,
                now,
                presented: presented.clone(),
                presented_exp: claims.expires_at(),
                roles: claims.roles.clone(),
                id: minted.id,
                hash: minted.hash,
                expires_at: minted.expires_at,
                commit_by,
            },
            token: minted.token,
        }
    }

    /// The pair handed out once the database has rotated.
    pub fn into_pair(
        self,
        issuer: &TokenIssuer,
        token: &VerifiedToken,
        rotated: &Rotated,
    ) -> TokenPair {
        let subject = Subject {
            email: &rotated.email,
            session_end: rotated.session_end,
            ..open_ended(token)
        };
        issuer.pair(&subject, self.token, self.args.expires_at, self.args.now)
    }
}

/// The subject of a verified token, with a session that never ends.
fn open_ended(token: &VerifiedToken) -> Subject<'_> {
    Subject {
        user_id: token.user_id,
        email: "",
        roles: &token.claims.roles,
        session_id: token.session_id,
        session_end: DateTime::<Utc>::MAX_UTC,
    }
}

/// Tries the one-statement rotation of one token on `conn` (a batch of
/// one). `Ok(None)`: some precondition does not hold; run the full
/// transaction instead.
pub fn rotate_in_one_statement(
    conn: &mut PgConnection,
    issuer: &TokenIssuer,
    token: &VerifiedToken,
    presented: &TokenHash,
    now: DateTime<Utc>,
) -> QueryResult<Option<TokenPair>> {
    let rotation = MintedRotation::mint(issuer, token, presented, now, crate::db::commit_by());
    let rotated = rotate_batch(conn, std::slice::from_ref(&rotation.args))?;
    Ok(rotated
        .into_iter()
        .next()
        .flatten()
        .map(|rotated| rotation.into_pair(issuer, token, &rotated)))
}

/// Sends a batch of rotations as one statement (one transaction). Returns,
/// for each element in order, what the database says of it, or `None` when
/// some precondition did not hold.
pub fn rotate_batch(
    conn: &mut PgConnection,
    batch: &[RotationArgs],
) -> QueryResult<Vec<Option<Rotated>>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let column = |f: fn(&RotationArgs) -> DateTime<Utc>| batch.iter().map(f).collect::<Vec<_>>();
    let (now, presented_exp, expires_at, commit_by) = (
        column(|r| r.now),
        column(|r| r.presented_exp),
        column(|r| r.expires_at),
        column(|r| r.commit_by),
    );
    let session_ids: Vec<Uuid> = batch.iter().map(|r| r.session_id).collect();
    let user_ids: Vec<Uuid> = batch.iter().map(|r| r.user_id).collect();
    let ids: Vec<Uuid> = batch.iter().map(|r| r.id).collect();
    let presented: Vec<&[u8]> = batch.iter().map(|r| r.presented.as_bytes()).collect();
    let hashes: Vec<&[u8]> = batch.iter().map(|r| r.hash.as_bytes()).collect();
    let roles: Vec<&[String]> = batch.iter().map(|r| r.roles.as_slice()).collect();
    let roles = serde_json::to_string(&roles).expect("role names serialise as JSON");
    let (first, last) = (
        expires_at.iter().min().copied().unwrap_or_default(),
        expires_at.iter().max().copied().unwrap_or_default(),
    );
    // Should no partition take a new row yet, nothing happened: the
    // partitions are made and the statement sent again.
    let rows: Vec<RotatedRow> =
        crate::partitions::with_partitions_for(conn, first, last, |conn| {
            diesel::sql_query(ROTATE)
                .bind::<Array<SqlUuid>, _>(&session_ids)
                .bind::<Array<SqlUuid>, _>(&user_ids)
                .bind::<Array<Timestamptz>, _>(&now)
                .bind::<Array<Bytea>, _>(&presented)
                .bind::<Array<SqlUuid>, _>(&ids)
                .bind::<Array<Timestamptz>, _>(&expires_at)
                .bind::<Array<Bytea>, _>(&hashes)
                .bind::<Text, _>(&roles)
                .bind::<Array<Timestamptz>, _>(&commit_by)
                .bind::<Array<Timestamptz>, _>(&presented_exp)
                .load(conn)
        })?;
    let mut out = vec![None; batch.len()];
    for row in rows {
        let slot = usize::try_from(row.ord - 1)
            .ok()
            .and_then(|i| out.get_mut(i))
            .ok_or_else(|| {
                diesel::result::Error::DeserializationError(
                    format!("a rotation came back for element {}", row.ord).into(),
                )
            })?;
        *slot = Some(Rotated {
            email: row.email,
            session_end: row.expires_at,
        });
    }
    Ok(out)
}
