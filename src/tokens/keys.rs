//! Signing and verification with a pinned algorithm (SPEC 4.1, 7.1).
//!
//! HS256 (the default): `jwt.secret` signs and verifies. EdDSA and RS256:
//! the key ring's active key signs, and names itself in the header's `kid`;
//! a token verifies only with the published key its `kid` names. In every
//! mode a token whose header names another algorithm than the configured
//! one (`none` included) is refused before its claims are read, so
//! switching `jwt.algorithm` ends the validity of tokens signed the old way.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{Claims, TokenHash, TokenKind};
use crate::config::SigningAlgorithm;
use crate::signing_keys::KeyRing;

/// Longest token we try to verify; anything longer is refused unread.
const MAX_TOKEN_LEN: usize = 4096;

/// The HS256 key (and in the asymmetric modes, the key from which the key
/// that encrypts the signing keys at rest is derived). `Debug` never prints it.
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
    /// Not a JWT of ours: bad shape, signature, algorithm, key id, issuer,
    /// audience, missing claims, or the other kind of token.
    #[error("the token is malformed, not ours, or of the wrong kind")]
    Invalid,
}

/// A token whose signature, algorithm, issuer, audience and kind were checked.
/// Expiry is left to the caller ([`Claims::is_expired_at`]): the reissue
/// rules need the claims of an expired token too.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: Claims,
    /// `sub`, parsed.
    pub user_id: Uuid,
    /// `sid`, parsed.
    pub session_id: Uuid,
}

/// The HS256 keys, derived from `jwt.secret` once.
struct SecretKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
}

#[derive(Clone)]
enum Signer {
    Secret(Arc<SecretKeys>),
    Ring(Arc<KeyRing>),
}

#[derive(Clone)]
pub struct TokenKeys {
    signer: Signer,
    algorithm: Algorithm,
    validation: Validation,
}

fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Expiry is judged by Claims::is_expired_at, with no leeway.
    validation.validate_exp = false;
    validation.leeway = 0;
    validation
}

impl TokenKeys {
    /// HS256 keys: `secret` signs and verifies.
    pub fn new(secret: &SecretKey, issuer: &str, audience: &str) -> TokenKeys {
        TokenKeys {
            signer: Signer::Secret(Arc::new(SecretKeys {
                encoding: EncodingKey::from_secret(secret.expose()),
                decoding: DecodingKey::from_secret(secret.expose()),
                header: Header::new(Algorithm::HS256),
            })),
            algorithm: Algorithm::HS256,
            validation: validation(Algorithm::HS256, issuer, audience),
        }
    }

    /// EdDSA or RS256 keys: the ring's keys sign and verify.
    pub fn with_ring(ring: Arc<KeyRing>, issuer: &str, audience: &str) -> TokenKeys {
        let algorithm = match ring.algorithm() {
            SigningAlgorithm::Rs256 => Algorithm::RS256,
            _ => Algorithm::EdDSA,
        };
        TokenKeys {
            signer: Signer::Ring(ring),
            algorithm,
            validation: validation(algorithm, issuer, audience),
        }
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        match &self.signer {
            Signer::Secret(_) => SigningAlgorithm::Hs256,
            Signer::Ring(ring) => ring.algorithm(),
        }
    }

    /// The key ring of the asymmetric modes.
    pub fn ring(&self) -> Option<&Arc<KeyRing>> {
        match &self.signer {
            Signer::Secret(_) => None,
            Signer::Ring(ring) => Some(ring),
        }
    }

    /// Signs claims with the key that signs now. All three algorithms are
    /// deterministic (HMAC, Ed25519 by RFC 8032, RSASSA-PKCS1-v1_5): the
    /// same claims and key yield the same string, which lets a token be
    /// handed out again from its stored row ([`TokenKeys::resign`]).
    pub fn sign(&self, claims: &Claims) -> String {
        match &self.signer {
            Signer::Secret(keys) => jsonwebtoken::encode(&keys.header, claims, &keys.encoding),
            Signer::Ring(ring) => {
                let key = ring.signing_key();
                jsonwebtoken::encode(&key.header, claims, &key.encoding)
            }
        }
        .expect("signing serialisable claims with a checked key cannot fail")
    }

    /// The token first signed at `signed_at` for these claims, signed again:
    /// with the key that signed at that time (or, failing that, another key
    /// of the ring) such that its hash is `expected`. If no key yields it,
    /// the string from the key of that time, which the caller's hash check
    /// then refuses.
    pub fn resign(
        &self,
        claims: &Claims,
        signed_at: DateTime<Utc>,
        expected: &TokenHash,
    ) -> String {
        let Signer::Ring(ring) = &self.signer else {
            return self.sign(claims);
        };
        let mut first = None;
        for key in ring.keys_for(signed_at) {
            let Ok(token) = jsonwebtoken::encode(&key.header, claims, &key.encoding) else {
                continue;
            };
            if TokenHash::of(&token) == *expected {
                return token;
            }
            first.get_or_insert(token);
        }
        first.unwrap_or_else(|| self.sign(claims))
    }

    /// Verifies a token of the given kind, expired or not.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<VerifiedToken, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let data = match &self.signer {
            Signer::Secret(keys) => {
                jsonwebtoken::decode::<Claims>(token, &keys.decoding, &self.validation)
            }
            Signer::Ring(ring) => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
                if header.alg != self.algorithm {
                    return Err(TokenError::Invalid);
                }
                let kid = header.kid.ok_or(TokenError::Invalid)?;
                let key = ring.published(&kid).ok_or(TokenError::Invalid)?;
                jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            }
        }
        .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        let (Some(user_id), Some(session_id), Some(_)) =
            (claims.user_id(), claims.session_id(), claims.token_id())
        else {
            return Err(TokenError::Invalid);
        };
        if claims.typ != kind {
            return Err(TokenError::Invalid);
        }
        Ok(VerifiedToken {
            claims,
            user_id,
            session_id,
        })
    }

    /// The JWK Set of the published public keys (RFC 7517); empty in HS256
    /// mode, whose key is secret.
    pub fn jwks(&self) -> Value {
        match &self.signer {
            Signer::Secret(_) => json!({ "keys": [] }),
            Signer::Ring(ring) => ring.jwks(),
        }
    }
}

#[cfg(test)]
mod tests;
