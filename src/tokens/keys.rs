//! Signing and verification. HS256 only: a token whose header names any
//! other algorithm (`none` included) is refused before its claims are read.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;

use super::{Claims, TokenKind};

/// Longest token we try to verify; anything longer is refused unread.
const MAX_TOKEN_LEN: usize = 4096;

/// The HS256 key. `Debug` never prints it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(secret: impl Into<String>) -> SecretKey {
        SecretKey(secret.into())
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT of ours: bad shape, signature, algorithm, issuer, audience,
    /// missing claims, or the other kind of token.
    #[error("the token is malformed, not ours, or of the wrong kind")]
    Invalid,
}

/// A token whose signature, algorithm, issuer, audience and kind were checked.
/// Expiry is left to the caller ([`Claims::is_expired_at`]): the reissue
/// rules need the claims of an expired token too.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: Claims,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: Header,
}

impl TokenKeys {
    pub fn new(secret: &SecretKey, issuer: &str, audience: &str) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is judged by Claims::is_expired_at, with no leeway.
        validation.validate_exp = false;
        validation.leeway = 0;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            validation,
            header: Header::new(Algorithm::HS256),
        }
    }

    /// Signs claims. HS256 over the same claims yields the same string, which
    /// lets a token be handed out again from its stored row.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
            .expect("HS256 signing of serialisable claims cannot fail")
    }

    /// Verifies a token of the given kind, expired or not.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.typ != kind
            || claims.user_id().is_none()
            || claims.session_id().is_none()
            || claims.token_id().is_none()
        {
            return Err(TokenError::Invalid);
        }
        Ok(VerifiedToken { claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            &SecretKey::new("0123456789abcdef0123456789abcdef"),
            "authgate",
            "clients",
        )
    }

    fn claims(typ: TokenKind) -> Claims {
        Claims {
            iss: "authgate".into(),
            aud: "clients".into(),
            sub: Uuid::new_v4().to_string(),
            sid: Uuid::new_v4().to_string(),
            jti: Uuid::new_v4().to_string(),
            typ,
            iat: 1_000,
            exp: 2_000,
            roles: vec!["admin".into()],
            email: None,
        }
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims_even_when_expired() {
        let c = claims(TokenKind::Refresh);
        let token = keys().sign(&c);
        let verified = keys().verify(&token, TokenKind::Refresh).unwrap();
        assert_eq!(verified.claims, c);
        assert!(verified.claims.is_expired_at(2_000));
    }

    #[test]
    fn signing_is_deterministic() {
        let c = claims(TokenKind::Refresh);
        assert_eq!(keys().sign(&c), keys().sign(&c));
    }

    #[test]
    fn one_kind_is_refused_where_the_other_is_expected() {
        let access = keys().sign(&claims(TokenKind::Access));
        let refresh = keys().sign(&claims(TokenKind::Refresh));
        assert_eq!(
            keys().verify(&access, TokenKind::Refresh).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            keys().verify(&refresh, TokenKind::Access).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn another_key_issuer_or_audience_is_refused() {
        let token = keys().sign(&claims(TokenKind::Access));
        for other in [
            TokenKeys::new(
                &SecretKey::new("another-key-another-key-another-key"),
                "authgate",
                "clients",
            ),
            TokenKeys::new(
                &SecretKey::new("0123456789abcdef0123456789abcdef"),
                "someone-else",
                "clients",
            ),
            TokenKeys::new(
                &SecretKey::new("0123456789abcdef0123456789abcdef"),
                "authgate",
                "others",
            ),
        ] {
            assert!(other.verify(&token, TokenKind::Access).is_err());
        }
    }

    #[test]
    fn the_none_algorithm_and_other_algorithms_are_refused() {
        let payload = serde_json::to_string(&claims(TokenKind::Access)).unwrap();
        let unsigned = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&payload)
        );
        assert!(keys().verify(&unsigned, TokenKind::Access).is_err());
        let signed = keys().sign(&claims(TokenKind::Access));
        let sig = signed.rsplit('.').next().unwrap();
        let hs512 = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS512","typ":"JWT"}"#),
            b64(&payload),
            sig
        );
        assert!(keys().verify(&hs512, TokenKind::Access).is_err());
    }

    #[test]
    fn garbage_and_oversized_tokens_are_refused() {
        for t in ["", "abc", "a.b.c", "..", &"x".repeat(5000)] {
            assert!(keys().verify(t, TokenKind::Access).is_err(), "{t:.20}");
        }
    }

    #[test]
    fn the_key_is_not_printed() {
        let k = SecretKey::new("0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{k:?}"), "SecretKey(<redacted>)");
    }
}
