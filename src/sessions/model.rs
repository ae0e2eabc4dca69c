//! The `sessions` and `refresh_tokens` tables and their queries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{refresh_tokens, sessions};
use crate::tokens::TokenHash;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// Why a session ended; stored in `sessions.revoked_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    LogoutAll,
    Deleted,
    Admin,
    ReuseDetected,
    Evicted,
    PairMismatch,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::LogoutAll => "logout_all",
            RevokeReason::Deleted => "deleted",
            RevokeReason::Admin => "admin",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::Evicted => "evicted",
            RevokeReason::PairMismatch => "pair_mismatch",
        }
    }
}

impl NewSession<'_> {
    pub fn insert(&self, conn: &mut PgConnection) -> QueryResult<Session> {
        diesel::insert_into(sessions::table)
            .values(self)
            .returning(Session::as_returning())
            .get_result(conn)
    }
}

impl Session {
    /// Locks the session row: reissues of one session are serialised on it.
    pub fn find_for_update(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Session>> {
        sessions::table
            .find(id)
            .select(Session::as_select())
            .for_update()
            .first(conn)
            .optional()
    }

    pub fn touch(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
        diesel::update(sessions::table.find(id))
            .set(sessions::last_used_at.eq(now))
            .execute(conn)
            .map(drop)
    }

    /// The user's live sessions, oldest first: not revoked, not past their
    /// absolute end, and still able to reissue: an unexpired current refresh
    /// token, or a use recent enough that an access token of it may still
    /// renew it (SPEC 4.3).
    pub fn live_for_user(
        conn: &mut PgConnection,
        user_id: Uuid,
        now: DateTime<Utc>,
        access_ttl: chrono::Duration,
    ) -> QueryResult<Vec<Session>> {
        let has_live_token = diesel::dsl::exists(
            refresh_tokens::table
                .filter(refresh_tokens::session_id.eq(sessions::id))
                .filter(refresh_tokens::spent_at.is_null())
                .filter(refresh_tokens::revoked_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        );
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .filter(has_live_token.or(sessions::last_used_at.gt(now - access_ttl)))
            .order((sessions::created_at.asc(), sessions::id.asc()))
            .select(Session::as_select())
            .load(conn)
    }

    /// A live-or-not session of this user, for deletion; None for another
    /// user's id, exactly as for an unknown one.
    pub fn find_of_user(
        conn: &mut PgConnection,
        id: Uuid,
        user_id: Uuid,
    ) -> QueryResult<Option<Session>> {
        sessions::table
            .find(id)
            .filter(sessions::user_id.eq(user_id))
            .select(Session::as_select())
            .first(conn)
            .optional()
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshToken {
    pub id: Uuid,
    pub session_id: Uuid,
    pub token_hash: TokenHash,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub spent_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub id: Uuid,
    pub session_id: Uuid,
    pub token_hash: &'a TokenHash,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl NewRefreshToken<'_> {
    /// Inserts the row, in a savepoint of the caller's transaction: if no
    /// partition takes its `expires_at` yet, that day's is made and the
    /// insert retried (see [`crate::partitions::with_partition_for`]).
    pub fn insert(&self, conn: &mut PgConnection) -> QueryResult<()> {
        crate::partitions::with_partition_for(conn, self.expires_at, |conn| {
            conn.transaction(|conn| {
                diesel::insert_into(refresh_tokens::table)
                    .values(self)
                    .execute(conn)
            })
        })
        .map(drop)
    }
}

impl RefreshToken {
    /// The look-up of reissue and logout, through the unique index on
    /// `(token_hash, expires_at)`: `expires_at` is the token's `exp`, which
    /// the row stores as it is, so PostgreSQL reads one partition. A row
    /// whose `expires_at` was changed by hand is still found by its hash
    /// alone, in every partition (a second query, only on a miss).
    pub fn find_by_hash(
        conn: &mut PgConnection,
        hash: &TokenHash,
        expires_at: DateTime<Utc>,
    ) -> QueryResult<Option<RefreshToken>> {
        let by_hash = || {
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(hash))
                .select(RefreshToken::as_select())
        };
        match by_hash()
            .filter(refresh_tokens::expires_at.eq(expires_at))
            .first(conn)
            .optional()?
        {
            Some(row) => Ok(Some(row)),
            None => by_hash().first(conn).optional(),
        }
    }

    /// The session's current token: the one issued last and not yet spent.
    pub fn current_for_session(
        conn: &mut PgConnection,
        session_id: Uuid,
    ) -> QueryResult<Option<RefreshToken>> {
        refresh_tokens::table
            .filter(refresh_tokens::session_id.eq(session_id))
            .filter(refresh_tokens::spent_at.is_null())
            .filter(refresh_tokens::revoked_at.is_null())
            .order(refresh_tokens::issued_at.desc())
            .select(RefreshToken::as_select())
            .first(conn)
            .optional()
    }

    pub fn mark_spent(&self, conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<()> {
        diesel::update(refresh_tokens::table.find((self.id, self.expires_at)))
            .set(refresh_tokens::spent_at.eq(now))
            .execute(conn)
            .map(drop)
    }
}
