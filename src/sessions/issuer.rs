//! Minting token pairs: claims from the user and session, lifetimes from
//! config, and never past the session's absolute end.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::{NewRefreshToken, RefreshToken, Session};
use crate::config::{JwtSettings, SessionPolicy};
use crate::tokens::{Claims, TokenHash, TokenKeys, TokenKind};
use crate::users::User;

/// The JSON of a successful login or reissue (SPEC 3).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenPair {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// A JWT for `POST /auth/reissue`; spent when used.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, pattern = "^Bearer$")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Seconds until the refresh token expires.
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

/// Whom a token is for, and in which session: the claims that stay the same
/// from one token of a session to the next, and the session's absolute end,
/// which no token outlives.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: Uuid,
    pub email: &'a str,
    pub roles: &'a [String],
    pub session_id: Uuid,
    pub session_end: DateTime<Utc>,
}

impl<'a> Subject<'a> {
    pub fn of(user: &'a User, session: &Session) -> Subject<'a> {
        Subject {
            user_id: user.id,
            email: &user.email,
            roles: &user.roles,
            session_id: session.id,
            session_end: session.expires_at,
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
    /// An issuer whose tokens `jwt.secret` signs (HS256).
    pub fn new(settings: &JwtSettings, policy: SessionPolicy) -> TokenIssuer {
        let keys = TokenKeys::new(&settings.secret, &settings.issuer, &settings.audience);
        TokenIssuer::with_keys(keys, settings, policy)
    }

    /// An issuer that signs with the given keys (the key ring of EdDSA or
    /// RS256 mode; see `crate::startup`).
    pub fn with_keys(
        keys: TokenKeys,
        settings: &JwtSettings,
        policy: SessionPolicy,
    ) -> TokenIssuer {
        TokenIssuer {
            keys,
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
        subject: &Subject<'_>,
        kind: TokenKind,
        jti: Uuid,
        iat: i64,
        exp: i64,
    ) -> Claims {
        Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id.to_string(),
            sid: subject.session_id.to_string(),
            jti: jti.to_string(),
            typ: kind,
            iat,
            exp,
            roles: subject.roles.to_vec(),
            email: (kind == TokenKind::Access).then(|| subject.email.to_owned()),
        }
    }

    /// A new refresh token for the session, expiring after the configured
    /// lifetime or at the session's end, whichever comes first.
    pub fn mint_refresh(&self, subject: &Subject<'_>, now: DateTime<Utc>) -> MintedRefresh {
        let iat = now.timestamp();
        let exp = iat
            .saturating_add(self.policy.refresh_ttl.num_seconds())
            .min(subject.session_end.timestamp());
        let id = Uuid::new_v4();
        let token = self
            .keys
            .sign(&self.claims(subject, TokenKind::Refresh, id, iat, exp));
        MintedRefresh {
            id,
            hash: TokenHash::of(&token),
            token,
            issued_at: secs(iat),
            expires_at: secs(exp),
        }
    }

    /// The token a stored row stands for, signed again with the key that
    /// first signed it (the same `kid`, even if another key signs now).
    /// Signing is deterministic in every mode, so this is the very string
    /// first handed out as long as the user's roles have not changed since;
    /// the caller checks the hash.
    pub fn resign_refresh(&self, subject: &Subject<'_>, row: &RefreshToken) -> String {
        let claims = self.claims(
            subject,
            TokenKind::Refresh,
            row.id,
            row.issued_at.timestamp(),
            row.expires_at.timestamp(),
        );
        self.keys.resign(&claims, row.issued_at, &row.token_hash)
    }

    /// A new pair around an already minted (or re-signed) refresh token.
    pub fn pair(
        &self,
        subject: &Subject<'_>,
        refresh_token: String,
        refresh_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> TokenPair {
        let iat = now.timestamp();
        let exp = iat
            .saturating_add(self.policy.access_ttl.num_seconds())
            .min(subject.session_end.timestamp());
        let access_token =
            self.keys
                .sign(&self.claims(subject, TokenKind::Access, Uuid::new_v4(), iat, exp));
        TokenPair {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: exp - iat,
            refresh_expires_in: (refresh_expires_at.timestamp() - iat).max(0),
            session_id: subject.session_id,
        }
    }
}
