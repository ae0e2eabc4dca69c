//! Ending sessions (SPEC 4.5): the one owner of "mark the session and its
//! refresh tokens revoked, announce it to every instance on commit, and tell
//! this instance's revoked set at once".
//!
//! Every route that ends sessions goes through [`Revocations`]: logout,
//! logout-all, session deletion, admin force-logout, login eviction, and the
//! reissue path (reuse detection, a mixed pair). Work that decides inside its
//! own transaction whether to end a session (reissue, login) runs in
//! [`Revocations::transaction`] and ends sessions through the [`Revoker`] it
//! is handed; the set learns of them only once the transaction commits.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::model::{RefreshToken, RevokeReason};
use super::revoked::RevokedSessions;
use crate::clock::Clock;
use crate::db::{self, run_blocking, Db};
use crate::error::ApiError;
use crate::schema::{refresh_tokens, sessions};
use crate::tokens::{TokenHash, TokenKeys, TokenKind, VerifiedToken};

/// The channel on which a revocation is announced to every instance; the
/// payload is the session id.
pub const REVOKED_CHANNEL: &str = "authgate_session_revoked";

diesel::define_sql_function!(fn pg_notify(channel: diesel::sql_types::Text, payload: diesel::sql_types::Text));

/// What ends sessions; shared by every route through the application state.
#[derive(Clone)]
pub struct Revocations {
    db: Db,
    set: Arc<RevokedSessions>,
    clock: Clock,
}

/// The only way to end sessions inside [`Revocations::transaction`]. It
/// remembers what it ended, for the revoked set once the work commits.
pub struct Revoker {
    clock: Clock,
    ended: Vec<(Uuid, DateTime<Utc>)>,
}

impl Revoker {
    /// Ends sessions: locks them in id order (so that concurrent revocations
    /// of overlapping sets cannot deadlock), marks them and their refresh
    /// tokens revoked, and queues a NOTIFY for each (delivered on commit).
    /// Sessions already ended are left as they are. Returns the ids ended.
    pub fn end(
        &mut self,
        conn: &mut PgConnection,
        ids: &[Uuid],
        reason: RevokeReason,
    ) -> QueryResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let locked: Vec<Uuid> = sessions::table
            .filter(sessions::id.eq_any(ids))
            .filter(sessions::revoked_at.is_null())
            .order(sessions::id)
            .select(sessions::id)
            .for_update()
            .load(conn)?;
        self.mark_ended(conn, locked, reason)
    }

    /// Ends the session of a live access token. When the session row is
    /// gone (deleted by hand, or swept), a revoked tombstone row takes its
    /// place until the token's `exp`, so that every instance, a newly
    /// started one included, refuses the token all the same.
    pub fn end_session_of_token(
        &mut self,
        conn: &mut PgConnection,
        session_id: Uuid,
        user_id: Uuid,
        token_exp: DateTime<Utc>,
        reason: RevokeReason,
    ) -> QueryResult<()> {
        let exists = diesel::select(diesel::dsl::exists(sessions::table.find(session_id)))
            .get_result::<bool>(conn)?;
        if exists {
            return self.end(conn, &[session_id], reason).map(drop);
        }
        let now = self.clock.now();
        diesel::sql_query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at,
                                   revoked_at, revoked_reason)
             SELECT $1, u.id, $3, $3, greatest($4, $3 + interval '1 second'), $3, $5
               FROM users u WHERE u.id = $2
             ON CONFLICT (id) DO NOTHING",
        )
        .bind::<diesel::sql_types::Uuid, _>(session_id)
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .bind::<diesel::sql_types::Timestamptz, _>(now)
        .bind::<diesel::sql_types::Timestamptz, _>(token_exp)
        .bind::<diesel::sql_types::Text, _>(reason.as_str())
        .execute(conn)?;
        diesel::select(pg_notify(REVOKED_CHANNEL, session_id.to_string())).execute(conn)?;
        log::info!("session {session_id} (gone) ended: {}", reason.as_str());
        self.ended.push((session_id, now));
        Ok(())
    }

    /// Ends every live session of a user.
    pub fn end_all_of_user(
        &mut self,
        conn: &mut PgConnection,
        user_id: Uuid,
        reason: RevokeReason,
    ) -> QueryResult<Vec<Uuid>> {
        let live: Vec<Uuid> = sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .select(sessions::id)
            .load(conn)?;
        self.end(conn, &live, reason)
    }

    fn mark_ended(
        &mut self,
        conn: &mut PgConnection,
        ids: Vec<Uuid>,
        reason: RevokeReason,
    ) -> QueryResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(ids);
        }
        let now = self.clock.now();
        diesel::update(sessions::table.filter(sessions::id.eq_any(&ids)))
            .set((
                sessions::revoked_at.eq(now),
                sessions::revoked_reason.eq(reason.as_str()),
            ))
            .execute(conn)?;
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::session_id.eq_any(&ids))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(now))
        .execute(conn)?;
        for id in &ids {
            diesel::select(pg_notify(REVOKED_CHANNEL, id.to_string())).execute(conn)?;
            log::info!("session {id} ended: {}", reason.as_str());
        }
        self.ended.extend(ids.iter().map(|id| (*id, now)));
        Ok(ids)
    }
}

impl Revocations {
    pub fn new(db: Db, set: Arc<RevokedSessions>, clock: Clock) -> Revocations {
        Revocations { db, set, clock }
    }

    /// Runs `f` in one transaction on the blocking pool. Sessions that `f`
    /// ends through the [`Revoker`] are added to this instance's revoked set
    /// once the transaction has committed (other instances hear the NOTIFY);
    /// when `f` fails, or the request's deadline has passed, everything is
    /// rolled back and nothing is added.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut PgConnection, &mut Revoker) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let clock = self.clock.clone();
        let (value, ended) = run_blocking(&self.db, move |conn| {
            conn.transaction(|conn| {
                let mut revoker = Revoker {
                    clock,
                    ended: Vec::new(),
                };
                let value = f(conn, &mut revoker)?;
                if db::abandoned() {
                    // The client was already told 503: roll back rather
                    // than let the change land unseen.
                    return Err(ApiError::Unavailable);
                }
                Ok::<_, ApiError>((value, revoker.ended))
            })
        })
        .await?;
        for (id, at) in ended {
            self.set.insert(id, at);
        }
        Ok(value)
    }

    /// Ends these sessions; returns the ids ended now.
    pub async fn end(&self, ids: Vec<Uuid>, reason: RevokeReason) -> Result<Vec<Uuid>, ApiError> {
        self.transaction(move |conn, revoker| Ok(revoker.end(conn, &ids, reason)?))
            .await
    }

    /// Ends every live session of the user; returns the ids ended.
    pub async fn end_all_of_user(
        &self,
        user_id: Uuid,
        reason: RevokeReason,
    ) -> Result<Vec<Uuid>, ApiError> {
        self.transaction(move |conn, revoker| Ok(revoker.end_all_of_user(conn, user_id, reason)?))
            .await
    }

    /// Ends the session of an unexpired access token of ours (its claims
    /// verified): logout, and RFC 7009 revocation. A session row that is
    /// gone gets a revoked tombstone (see [`Revoker::end_session_of_token`]).
    pub async fn end_session_of_access(
        &self,
        access: &VerifiedToken,
        reason: RevokeReason,
    ) -> Result<(), ApiError> {
        let (sid, uid) = (access.session_id, access.user_id);
        let exp = DateTime::from_timestamp(access.claims.exp, 0).unwrap_or_default();
        self.transaction(move |conn, revoker| {
            Ok(revoker.end_session_of_token(conn, sid, uid, exp, reason)?)
        })
        .await
    }

    /// Ends the session of a refresh token of ours: logout, and RFC 7009
    /// revocation. Its row must be of that session; an expired or spent one
    /// still ends it (only the session's holder ever had it, and ending a
    /// session is the safe direction). `SessionRevoked` when the session had
    /// ended already; `InvalidToken` when the token is not ours or its row
    /// is gone.
    pub async fn end_session_of_refresh(
        &self,
        keys: &TokenKeys,
        refresh: &str,
        reason: RevokeReason,
    ) -> Result<(), ApiError> {
        let VerifiedToken {
            claims,
            session_id: sid,
            ..
        } = keys.verify(refresh, TokenKind::Refresh)?;
        let hash = TokenHash::of(refresh);
        self.transaction(move |conn, revoker| {
            match RefreshToken::find_by_hash(conn, &hash, claims.expires_at())? {
                Some(row) if row.session_id == sid && row.revoked_at.is_none() => {
                    revoker.end(conn, &[sid], reason)?;
                    Ok(())
                }
                Some(row) if row.session_id == sid => Err(ApiError::SessionRevoked),
                _ => Err(ApiError::InvalidToken),
            }
        })
        .await
    }

    /// This instance's revoked set, for the access-token check.
    pub fn set(&self) -> &RevokedSessions {
        &self.set
    }
}
