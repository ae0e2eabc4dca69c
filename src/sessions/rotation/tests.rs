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
    use crate::tokens::{Claims, SecretKey};
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
        let other_session = bearer(&token(&ours(), TokenKind::Access, Uuid::new_v4(), NOW + 10));
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
