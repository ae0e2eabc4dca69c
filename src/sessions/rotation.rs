//! Reissue (SPEC 4.3): which rule applies to a presented refresh token, and
//! what the access token sent beside it proves, as pure functions; and the
//! transaction that carries the verdict out. Pair binding, grace, reuse and
//! expiry are all decided in this file.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use super::issuer::{Subject, TokenIssuer, TokenPair};
use super::model::{RefreshToken, RevokeReason, Session};
use super::revocation::Revoker;
use crate::clock::Clock;
use crate::error::ApiError;
use crate::tokens::{parse_bearer, TokenHash, TokenKeys, TokenKind, VerifiedToken};
use crate::users::User;

/// What the access token sent beside a refresh token (body form) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessEvidence {
    /// No access token was sent.
    Absent,
    /// Ours, of the same session; `expired` tells whether it is past `exp`.
    SameSession { expired: bool },
    /// Not ours, unreadable, or of another session: a mixed, stolen pair.
    Mismatch,
}

/// Classifies the `Authorization` header of a body-form reissue, given the
/// refresh token of the body, its session id, our keys and the time (unix
/// seconds). No header, another scheme (`Basic …`), or the refresh token
/// itself repeated as Bearer prove nothing either way; a `Bearer` header
/// that is malformed, not ours, not an access token, or of another session
/// is a mixed pair.
pub fn access_evidence(
    authorization: Option<&[u8]>,
    refresh: &str,
    sid: &str,
    keys: &TokenKeys,
    now: i64,
) -> AccessEvidence {
    let Some(value) = authorization else {
        return AccessEvidence::Absent;
    };
    let Some(token) = parse_bearer(value) else {
        let claims_bearer = value
            .get(..6)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer"));
        return if claims_bearer {
            AccessEvidence::Mismatch
        } else {
            AccessEvidence::Absent
        };
    };
    if token == refresh {
        return AccessEvidence::Absent;
    }
    match keys.verify(token, TokenKind::Access) {
        Ok(access) if access.claims.sid == sid => AccessEvidence::SameSession {
            expired: access.claims.is_expired_at(now),
        },
        _ => AccessEvidence::Mismatch,
    }
}

/// The rule that applies to one reissue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Spend the token and hand out a new pair.
    Rotate,
    /// A repeat within the grace window: hand out the session's current
    /// token again, revoke nothing.
    RepeatWithinGrace,
    /// A spent token came back after the grace window: theft.
    Reused,
    /// The access token beside it does not belong: theft.
    PairMismatch,
    /// The session has ended.
    Revoked,
    /// Expired (and not renewable): log in again.
    Expired,
}

/// Decides the rule, given the session and token rows (locked), whether the
/// refresh JWT is past its `exp`, the access-token evidence, and the time.
pub fn judge(
    session: &Session,
    row: &RefreshToken,
    refresh_expired: bool,
    access: AccessEvidence,
    now: DateTime<Utc>,
    grace: Duration,
) -> Verdict {
    if session.revoked_at.is_some() || row.revoked_at.is_some() {
        return Verdict::Revoked;
    }
    if access == AccessEvidence::Mismatch {
        return Verdict::PairMismatch;
    }
    if now >= session.expires_at {
        return Verdict::Expired;
    }
    let access_alive = access == AccessEvidence::SameSession { expired: false };
    if let Some(spent_at) = row.spent_at {
        return if refresh_expired {
            // Too old to be worth a theft alarm: nothing can be done with it.
            Verdict::Expired
        } else if grace > Duration::zero() && now < spent_at + grace {
            Verdict::RepeatWithinGrace
        } else {
            Verdict::Reused
        };
    }
    if refresh_expired && !access_alive {
        return Verdict::Expired;
    }
    Verdict::Rotate
}

/// What a reissue produced. A refusal is still committed: it may have
/// ended the session (reuse, a mixed pair).
pub enum ReissueOutcome {
    Issued(TokenPair),
    Refused(ApiError),
}

/// Carries out a reissue inside the caller's transaction (see
/// [`super::Revocations::transaction`]). The session row is locked first,
/// so concurrent reissues of one session run one after the other, and the
/// clock is read only after the lock, so that a request that waited never
/// sees a time before the rotation it waited for. A pair is returned only
/// once its row is committed.
pub fn reissue(
    conn: &mut PgConnection,
    revoker: &mut Revoker,
    issuer: &TokenIssuer,
    token: &VerifiedToken,
    presented: &TokenHash,
    access: AccessEvidence,
    clock: &Clock,
) -> Result<ReissueOutcome, ApiError> {
    let (claims, user_id, session_id) = (&token.claims, token.user_id, token.session_id);
    let refuse = |error| Ok(ReissueOutcome::Refused(error));
    let Some(session) = Session::find_for_update(conn, session_id)? else {
        return refuse(ApiError::InvalidToken);
    };
    let now = clock.now();
    let row = RefreshToken::find_by_hash(conn, presented, claims.expires_at())?;
    let Some(row) = row.filter(|r| r.session_id == session.id && session.user_id == user_id) else {
        // Signed by us but unknown: its session was deleted, or the row swept.
        return refuse(if session.revoked_at.is_some() {
            ApiError::SessionRevoked
        } else {
            ApiError::InvalidToken
        });
    };
    let verdict = judge(
        &session,
        &row,
        claims.is_expired_at(now.timestamp()),
        access,
        now,
        issuer.policy().reuse_grace,
    );
    let mut revoke = |reason, error| -> Result<ReissueOutcome, ApiError> {
        revoker.end(conn, &[session.id], reason)?;
        Ok(ReissueOutcome::Refused(error))
    };
    match verdict {
        Verdict::Revoked => refuse(ApiError::SessionRevoked),
        Verdict::Expired => refuse(ApiError::TokenExpired),
        Verdict::Reused => revoke(RevokeReason::ReuseDetected, ApiError::TokenReused),
        Verdict::PairMismatch => revoke(RevokeReason::PairMismatch, ApiError::InvalidToken),
        Verdict::RepeatWithinGrace => {
            let user = User::find(conn, session.user_id)?.ok_or(ApiError::InvalidToken)?;
            let Some(current) = RefreshToken::current_for_session(conn, session.id)? else {
                return refuse(ApiError::SessionRevoked);
            };
            let subject = Subject::of(&user, &session);
            let token = issuer.resign_refresh(&subject, &current);
            if TokenHash::of(&token) == current.token_hash {
                Session::touch(conn, session.id, now)?;
                let pair = issuer.pair(&subject, token, current.expires_at, now);
                return Ok(ReissueOutcome::Issued(pair));
            }
            // The roles changed since, so the same string cannot be made
            // again: move the chain on from the current token instead.
            rotate(conn, issuer, &user, &session, &current, now)
        }
        Verdict::Rotate => {
            let user = User::find(conn, session.user_id)?.ok_or(ApiError::InvalidToken)?;
            rotate(conn, issuer, &user, &session, &row, now)
        }
    }
}

fn rotate(
    conn: &mut PgConnection,
    issuer: &TokenIssuer,
    user: &User,
    session: &Session,
    spent: &RefreshToken,
    now: DateTime<Utc>,
) -> Result<ReissueOutcome, ApiError> {
    spent.mark_spent(conn, now)?;
    let subject = Subject::of(user, session);
    let minted = issuer.mint_refresh(&subject, now);
    minted.row(session.id).insert(conn)?;
    Session::touch(conn, session.id, now)?;
    let pair = issuer.pair(&subject, minted.token, minted.expires_at, now);
    Ok(ReissueOutcome::Issued(pair))
}

#[cfg(test)]
mod tests;
