//! Token introspection (RFC 7662, SPEC 7.2): whether a token is active, and
//! its claims when it is. The signature, kind and expiry are judged from the
//! token itself; whether its session is live is asked of PostgreSQL, never
//! of the in-memory revoked set, so that the answer is the database's at
//! that moment, on every instance alike.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::schema::{refresh_tokens, sessions, users};
use crate::tokens::{Claims, TokenHash, TokenKeys, TokenKind, VerifiedToken};

/// The answer: exactly `{"active": false}`, or `active: true` with the
/// token's members.
#[derive(Debug, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten)]
    pub token: Option<ActiveToken>,
}

/// Written by hand: derived, the flattened `Option` would make every answer
/// an `ActiveToken` or `null`, and `{"active": false}` neither.
impl utoipa::PartialSchema for Introspection {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let schema = serde_json::json!({
            "description": "Exactly `{\"active\": false}`, or `active: true` with the \
                            token's members (RFC 7662 2.2)",
            "oneOf": [
                {
                    "type": "object",
                    "properties": { "active": { "type": "boolean", "enum": [false] } },
                    "required": ["active"],
                    "additionalProperties": false
                },
                {
                    "allOf": [
                        { "$ref": "#/components/schemas/ActiveToken" },
                        {
                            "type": "object",
                            "properties": { "active": { "type": "boolean", "enum": [true] } },
                            "required": ["active"]
                        }
                    ]
                }
            ]
        });
        serde_json::from_value(schema).expect("a valid schema")
    }
}

impl ToSchema for Introspection {}

impl Introspection {
    pub const INACTIVE: Introspection = Introspection {
        active: false,
        token: None,
    };
}

/// The members of an active token (RFC 7662 §2.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveToken {
    /// `access_token` or `refresh_token`.
    #[schema(value_type = String, pattern = "^(access_token|refresh_token)$")]
    pub token_type: &'static str,
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// The user's email, read with the session.
    pub username: String,
}

/// A token that is ours and unexpired, still to be checked against its
/// session (and, for a refresh token, its row).
#[derive(Debug)]
pub struct Candidate {
    kind: TokenKind,
    claims: Claims,
    session_id: Uuid,
    user_id: Uuid,
    /// The refresh token's hash, to find its row; none for access tokens.
    refresh_hash: Option<TokenHash>,
}

impl Candidate {
    /// Reads a presented token without the database: `None` (inactive) when
    /// it is not a token of ours of either kind, or is expired at `now`
    /// (unix seconds). Both kinds are tried, whatever `token_type_hint`
    /// said: the token's own `typ` claim tells which it is.
    pub fn of(keys: &TokenKeys, token: &str, now: i64) -> Option<Candidate> {
        let (kind, verified) = [TokenKind::Access, TokenKind::Refresh]
            .into_iter()
            .find_map(|kind| Some((kind, keys.verify(token, kind).ok()?)))?;
        let VerifiedToken {
            claims,
            user_id,
            session_id,
        } = verified;
        if claims.is_expired_at(now) {
            return None;
        }
        Some(Candidate {
            kind,
            session_id,
            user_id,
            refresh_hash: (kind == TokenKind::Refresh).then(|| TokenHash::of(token)),
            claims,
        })
    }

    /// Asks PostgreSQL: active when the session is the user's, not revoked
    /// and not past its end, and, for a refresh token, its row is of that
    /// session, unspent, unrevoked and unexpired. One query.
    pub fn introspect(
        self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> QueryResult<Introspection> {
        let mut live = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(self.session_id))
            .filter(sessions::user_id.eq(self.user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .select(users::email)
            .into_boxed();
        if let Some(hash) = &self.refresh_hash {
            live = live.filter(exists(
                refresh_tokens::table
                    .filter(refresh_tokens::token_hash.eq(hash))
                    .filter(refresh_tokens::expires_at.eq(self.claims.expires_at()))
                    .filter(refresh_tokens::session_id.eq(sessions::id))
                    .filter(refresh_tokens::spent_at.is_null())
                    .filter(refresh_tokens::revoked_at.is_null())
                    .filter(refresh_tokens::expires_at.gt(now)),
            ));
        }
        let Some(username) = live.first::<String>(conn).optional()? else {
            return Ok(Introspection::INACTIVE);
        };
        let claims = self.claims;
        Ok(Introspection {
            active: true,
            token: Some(ActiveToken {
                token_type: match self.kind {
                    TokenKind::Access => "access_token",
                    TokenKind::Refresh => "refresh_token",
                },
                sub: claims.sub,
                sid: claims.sid,
                jti: claims.jti,
                iat: claims.iat,
                exp: claims.exp,
                iss: claims.iss,
                aud: claims.aud,
                username,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Which tokens are active is shown end to end in tests/api/oauth.rs.
    #[test]
    fn inactive_is_exactly_active_false() {
        let json = serde_json::to_value(Introspection::INACTIVE).unwrap();
        assert_eq!(json, serde_json::json!({ "active": false }));
    }
}
