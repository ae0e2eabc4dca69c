//! Minting token pairs: claims from the user and session, lifetimes from
//! config, and never past the session's absolute end.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::model::{NewRefreshToken, RefreshToken, Session};
use crate::config::{JwtSettings, SessionPolicy};
use crate::tokens::{Claims, TokenHash, TokenKeys, TokenKind};
use crate::users::User;

/// The JSON of a successful login or reissue (SPEC 3).
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_expires_in: i64,
    pub session_id: Uuid,
}

/// A refresh token and the row that records it.
pub struct MintedRefresh {
    pub id: Uuid,
    pub token: String,
    pub hash: TokenHash,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl MintedRefresh {
    pub fn row(&self, session_id: Uuid) -> NewRefreshToken<'_> {
        NewRefreshToken {
            id: self.id,
            session_id,
            token_hash: &self.hash,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        }
    }
}

/// Mints pairs under the session policy; also the policy's holder for the
/// rules of reissue.
#[derive(Clone)]
pub struct TokenIssuer {
    keys: TokenKeys,
    issuer: String,
    audience: String,
    policy: SessionPolicy,
}

fn secs(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl TokenIssuer {
    pub fn new(settings: &JwtSettings, policy: SessionPolicy) -> TokenIssuer {
        TokenIssuer {
            keys: TokenKeys::new(&settings.secret, &settings.issuer, &settings.audience),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            policy,
        }
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    fn claims(
        &self,
        user: &User,
        session_id: Uuid,
        kind: TokenKind,
        jti: Uuid,
        iat: i64,
        exp: i64,
    ) -> Claims {
        Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.id.to_string(),
            sid: session_id.to_string(),
            jti: jti.to_string(),
            typ: kind,
            iat,
            exp,
            roles: user.roles.clone(),
            email: (kind == TokenKind::Access).then(|| user.email.clone()),
        }
    }

    /// A new refresh token for the session, expiring after the configured
    /// lifetime or at the session's end, whichever comes first.
    pub fn mint_refresh(
        &self,
        user: &User,
        session: &Session,
        now: DateTime<Utc>,
    ) -> MintedRefresh {
        let iat = now.timestamp();
        let exp = iat
            .saturating_add(self.policy.refresh_ttl.num_seconds())
            .min(session.expires_at.timestamp());
        let id = Uuid::new_v4();
        let token =
            self.keys
                .sign(&self.claims(user, session.id, TokenKind::Refresh, id, iat, exp));
        MintedRefresh {
            id,
            hash: TokenHash::of(&token),
            token,
            issued_at: secs(iat),
            expires_at: secs(exp),
        }
    }

    /// The token a stored row stands for, signed again. HS256 is
    /// deterministic, so this is the very string first handed out as long as
    /// the user's roles have not changed since; the caller checks the hash.
    pub fn resign_refresh(&self, user: &User, row: &RefreshToken) -> String {
        self.keys.sign(&self.claims(
            user,
            row.session_id,
            TokenKind::Refresh,
            row.id,
            row.issued_at.timestamp(),
            row.expires_at.timestamp(),
        ))
    }

    /// A new pair around an already minted (or re-signed) refresh token.
    pub fn pair(
        &self,
        user: &User,
        session: &Session,
        refresh_token: String,
        refresh_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> TokenPair {
        let iat = now.timestamp();
        let exp = iat
            .saturating_add(self.policy.access_ttl.num_seconds())
            .min(session.expires_at.timestamp());
        let access_token = self.keys.sign(&self.claims(
            user,
            session.id,
            TokenKind::Access,
            Uuid::new_v4(),
            iat,
            exp,
        ));
        TokenPair {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: exp - iat,
            refresh_expires_in: (refresh_expires_at.timestamp() - iat).max(0),
            session_id: session.id,
        }
    }
}
