//! The claims of both token kinds (SPEC 4.1).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which of the two tokens a JWT is; carried in the `typ` claim so that one
/// is never accepted where the other is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub jti: String,
    pub typ: TokenKind,
    pub iat: i64,
    pub exp: i64,
    pub roles: Vec<String>,
    /// The user's email, on access tokens only, so that `/auth/me` needs no
    /// database round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Claims {
    /// Whether the token is expired at `now` (unix seconds). RFC 7519: the
    /// token must not be accepted on or after `exp`; no leeway is added.
    pub fn is_expired_at(&self, now: i64) -> bool {
        now >= self.exp
    }

    /// `exp` as a time: for a refresh token, the `expires_at` of its row
    /// (the partition key of `refresh_tokens`).
    pub fn expires_at(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.exp, 0)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }

    pub fn user_id(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.sub).ok()
    }

    pub fn session_id(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.sid).ok()
    }

    pub fn token_id(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.jti).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: Uuid::nil().to_string(),
            sid: Uuid::nil().to_string(),
            jti: Uuid::nil().to_string(),
            typ: TokenKind::Access,
            iat: exp - 10,
            exp,
            roles: vec![],
            email: None,
        }
    }

    #[test]
    fn a_token_is_expired_from_its_exp_second_on() {
        let c = claims(100);
        assert!(!c.is_expired_at(99));
        assert!(c.is_expired_at(100));
        assert!(c.is_expired_at(101));
    }

    #[test]
    fn typ_serialises_in_lowercase_and_email_is_omitted_when_absent() {
        let json = serde_json::to_value(claims(100)).unwrap();
        assert_eq!(json["typ"], "access");
        assert!(json.get("email").is_none());
        assert!(json["iat"].is_i64() && json["exp"].is_i64());
        assert!(json["sub"].is_string() && json["roles"].is_array());
    }
}
