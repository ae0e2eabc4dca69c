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
use crate::tokens::{parse_bearer, Claims, TokenHash, TokenKeys, TokenKind};
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
    claims: &Claims,
    presented: &TokenHash,
    access: AccessEvidence,
    clock: &Clock,
) -> Result<ReissueOutcome, ApiError> {
    let (Some(session_id), Some(user_id)) = (claims.session_id(), claims.user_id()) else {
        return Err(ApiError::InvalidToken);
    };
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
mod tests {
    use super::*;
    use uuid::Uuid;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn session() -> Session {
        Session {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            created_at: t(0),
            last_used_at: t(0),
            expires_at: t(1000),
            revoked_at: None,
            revoked_reason: None,
            user_agent: None,
            ip: None,
        }
    }

    fn row() -> RefreshToken {
        RefreshToken {
            id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            token_hash: TokenHash::of(""),
            issued_at: t(0),
            expires_at: t(100),
            spent_at: None,
            revoked_at: None,
        }
    }

    /// The verdict for a live session (`session()`) at `t(at)`.
    fn verdict(
        row: &RefreshToken,
        refresh_expired: bool,
        access: AccessEvidence,
        at: i64,
        grace: Duration,
    ) -> Verdict {
        judge(&session(), row, refresh_expired, access, t(at), grace)
    }

    const NO_GRACE: Duration = Duration::zero();
    const ALIVE: AccessEvidence = AccessEvidence::SameSession { expired: false };
    const DEAD: AccessEvidence = AccessEvidence::SameSession { expired: true };

    #[test]
    fn a_current_unexpired_token_rotates() {
        for access in [AccessEvidence::Absent, ALIVE, DEAD] {
            assert_eq!(
                verdict(&row(), false, access, 10, NO_GRACE),
                Verdict::Rotate
            );
        }
    }

    #[test]
    fn the_four_expiry_cases() {
        // Both expired.
        assert_eq!(verdict(&row(), true, DEAD, 200, NO_GRACE), Verdict::Expired);
        assert_eq!(
            verdict(&row(), true, AccessEvidence::Absent, 200, NO_GRACE),
            Verdict::Expired
        );
        // Access expired, refresh valid.
        assert_eq!(verdict(&row(), false, DEAD, 50, NO_GRACE), Verdict::Rotate);
        // Access valid, refresh expired: renewed.
        assert_eq!(verdict(&row(), true, ALIVE, 200, NO_GRACE), Verdict::Rotate);
        // Both valid.
        assert_eq!(verdict(&row(), false, ALIVE, 50, NO_GRACE), Verdict::Rotate);
    }

    #[test]
    fn no_renewal_past_the_session_lifetime() {
        assert_eq!(
            verdict(&row(), true, ALIVE, 1000, NO_GRACE),
            Verdict::Expired
        );
        assert_eq!(
            verdict(&row(), false, ALIVE, 1000, NO_GRACE),
            Verdict::Expired
        );
    }

    #[test]
    fn a_spent_token_is_reuse_after_the_grace_and_a_repeat_within_it() {
        let mut spent = row();
        spent.spent_at = Some(t(10));
        let grace = Duration::seconds(5);
        assert_eq!(
            verdict(&spent, false, AccessEvidence::Absent, 10, NO_GRACE),
            Verdict::Reused
        );
        assert_eq!(
            verdict(&spent, false, AccessEvidence::Absent, 14, grace),
            Verdict::RepeatWithinGrace
        );
        assert_eq!(
            verdict(&spent, false, AccessEvidence::Absent, 15, grace),
            Verdict::Reused
        );
        assert_eq!(
            verdict(&spent, true, AccessEvidence::Absent, 150, grace),
            Verdict::Expired
        );
    }

    #[test]
    fn without_grace_a_spent_token_is_reuse_even_a_moment_before_its_rotation() {
        // A request that read the clock before the rotation it waited for.
        let mut spent = row();
        spent.spent_at = Some(t(10));
        assert_eq!(
            verdict(&spent, false, AccessEvidence::Absent, 9, NO_GRACE),
            Verdict::Reused
        );
    }

    #[test]
    fn revocation_wins_over_everything() {
        let mut revoked = session();
        revoked.revoked_at = Some(t(5));
        let mut spent = row();
        spent.spent_at = Some(t(1));
        assert_eq!(
            judge(
                &revoked,
                &spent,
                false,
                AccessEvidence::Mismatch,
                t(10),
                NO_GRACE
            ),
            Verdict::Revoked
        );
    }

    #[test]
    fn a_foreign_access_token_is_a_mismatch() {
        assert_eq!(
            verdict(&row(), false, AccessEvidence::Mismatch, 10, NO_GRACE),
            Verdict::PairMismatch
        );
    }

    mod evidence {
        use super::super::*;
        use crate::tokens::SecretKey;
        use uuid::Uuid;

        const NOW: i64 = 1_700_000_000;

        fn keys(secret: &str) -> TokenKeys {
            TokenKeys::new(&SecretKey::new(secret), "authgate", "clients")
        }

        fn ours() -> TokenKeys {
            keys("0123456789abcdef0123456789abcdef")
        }

        fn token(keys: &TokenKeys, typ: TokenKind, sid: Uuid, exp: i64) -> String {
            keys.sign(&Claims {
                iss: "authgate".into(),
                aud: "clients".into(),
                sub: Uuid::new_v4().to_string(),
                sid: sid.to_string(),
                jti: Uuid::new_v4().to_string(),
                typ,
                iat: exp - 60,
                exp,
                roles: vec![],
                email: None,
            })
        }

        #[test]
        fn a_table_of_what_the_authorization_header_proves() {
            let sid = Uuid::new_v4();
            let refresh = token(&ours(), TokenKind::Refresh, sid, NOW + 100);
            let bearer = |t: &str| format!("Bearer {t}");
            let alive = bearer(&token(&ours(), TokenKind::Access, sid, NOW + 10));
            let expired = bearer(&token(&ours(), TokenKind::Access, sid, NOW));
            let other_session =
                bearer(&token(&ours(), TokenKind::Access, Uuid::new_v4(), NOW + 10));
            let foreign = bearer(&token(
                &keys("another-key-another-key-another-key"),
                TokenKind::Access,
                sid,
                NOW + 10,
            ));
            let refresh_of_session = bearer(&token(&ours(), TokenKind::Refresh, sid, NOW + 10));
            let same_refresh = bearer(&refresh);
            let lower_case_scheme = format!("bearer {}", &alive[7..]);
            let table: &[(&str, Option<&str>, AccessEvidence)] = &[
                ("no header", None, AccessEvidence::Absent),
                (
                    "another scheme",
                    Some("Basic dXNlcjpwYXNz"),
                    AccessEvidence::Absent,
                ),
                (
                    "the refresh token again",
                    Some(&same_refresh),
                    AccessEvidence::Absent,
                ),
                (
                    "alive, same session",
                    Some(&alive),
                    AccessEvidence::SameSession { expired: false },
                ),
                (
                    "scheme in lower case",
                    Some(&lower_case_scheme),
                    AccessEvidence::SameSession { expired: false },
                ),
                (
                    "expired, same session",
                    Some(&expired),
                    AccessEvidence::SameSession { expired: true },
                ),
                (
                    "another session",
                    Some(&other_session),
                    AccessEvidence::Mismatch,
                ),
                (
                    "signed by someone else",
                    Some(&foreign),
                    AccessEvidence::Mismatch,
                ),
                (
                    "a refresh token as access",
                    Some(&refresh_of_session),
                    AccessEvidence::Mismatch,
                ),
                (
                    "garbage",
                    Some("Bearer not.a.token"),
                    AccessEvidence::Mismatch,
                ),
                (
                    "bearer without token",
                    Some("Bearer"),
                    AccessEvidence::Mismatch,
                ),
                (
                    "bearer with two tokens",
                    Some("Bearer a b"),
                    AccessEvidence::Mismatch,
                ),
            ];
            for (case, header, expected) in table {
                let got = access_evidence(
                    header.map(str::as_bytes),
                    &refresh,
                    &sid.to_string(),
                    &ours(),
                    NOW,
                );
                assert_eq!(got, *expected, "{case}");
            }
            let non_ascii = "Bearer tök".as_bytes();
            assert_eq!(
                access_evidence(Some(non_ascii), &refresh, &sid.to_string(), &ours(), NOW),
                AccessEvidence::Mismatch
            );
        }
    }
}
