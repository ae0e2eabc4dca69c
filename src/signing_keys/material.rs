//! Key material: new Ed25519 and RSA 2048 keys, their public JWKs (RFC 7517)
//! and kids (RFC 7638 thumbprints), and the jsonwebtoken keys that sign and
//! verify with them.

use std::collections::BTreeMap;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::SigningAlgorithm;

/// RSA modulus size of RS256 keys.
pub const RSA_BITS: usize = 2048;

/// A private key in DER: PKCS#8 for Ed25519 (what jsonwebtoken signs with),
/// PKCS#1 for RSA. `Debug` never prints it.
#[derive(Clone)]
pub struct PrivateDer(Vec<u8>);

impl PrivateDer {
    pub fn new(der: Vec<u8>) -> PrivateDer {
        PrivateDer(der)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PrivateDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateDer(<redacted>)")
    }
}

/// A freshly made key pair, before it is sealed and stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// The JWK served in the JWKS (kid, alg and use included).
    pub public_jwk: Value,
    pub private_der: PrivateDer,
}

#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("HS256 has no key pairs")]
    Symmetric,
    #[error("the private key cannot be read: {0}")]
    Unreadable(String),
    #[error("the private key does not belong to the key id {0}")]
    Mismatch(String),
    #[error("the public JWK cannot be used: {0}")]
    BadJwk(String),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Makes a new key pair for the algorithm, from the operating system's
/// random source. An RSA key takes a noticeable time (prime search).
pub fn generate(alg: SigningAlgorithm) -> Result<NewKey, MaterialError> {
    let der = match alg {
        SigningAlgorithm::Hs256 => return Err(MaterialError::Symmetric),
        SigningAlgorithm::EdDsa => {
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            seed.fill(0);
            use ed25519_dalek::pkcs8::EncodePrivateKey;
            key.to_pkcs8_der()
                .map_err(|e| MaterialError::Unreadable(e.to_string()))?
                .as_bytes()
                .to_vec()
        }
        SigningAlgorithm::Rs256 => rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS)
            .and_then(|key| Ok(key.to_pkcs1_der()?))
            .map_err(|e| MaterialError::Unreadable(e.to_string()))?
            .as_bytes()
            .to_vec(),
    };
    let private_der = PrivateDer::new(der);
    let members = public_members(alg, &private_der)?;
    let kid = thumbprint(&members);
    Ok(NewKey {
        public_jwk: jwk(alg, &kid, members),
        kid,
        alg,
        private_der,
    })
}

/// The members of the public key that RFC 7638 hashes: `kty` and `crv`/`x`
/// for Ed25519, `kty`, `n` and `e` for RSA, derived from the private key.
pub fn public_members(
    alg: SigningAlgorithm,
    der: &PrivateDer,
) -> Result<BTreeMap<&'static str, String>, MaterialError> {
    let unreadable = |e: &dyn std::fmt::Display| MaterialError::Unreadable(e.to_string());
    Ok(match alg {
        SigningAlgorithm::Hs256 => return Err(MaterialError::Symmetric),
        SigningAlgorithm::EdDsa => {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(der.expose())
                .map_err(|e| unreadable(&e))?;
            BTreeMap::from([
                ("crv", "Ed25519".to_owned()),
                ("kty", "OKP".to_owned()),
                ("x", b64(key.verifying_key().as_bytes())),
            ])
        }
        SigningAlgorithm::Rs256 => {
            let key =
                rsa::RsaPrivateKey::from_pkcs1_der(der.expose()).map_err(|e| unreadable(&e))?;
            BTreeMap::from([
                ("e", b64(&key.e().to_bytes_be())),
                ("kty", "RSA".to_owned()),
                ("n", b64(&key.n().to_bytes_be())),
            ])
        }
    })
}

/// The RFC 7638 thumbprint: SHA-256 of the required members as JSON with
/// sorted keys and no whitespace, base64url. A `BTreeMap` of strings
/// serialises exactly so (the values are base64url or plain names: nothing
/// to escape).
pub fn thumbprint(members: &BTreeMap<&'static str, String>) -> String {
    let canonical = serde_json::to_vec(members).expect("a map of strings serialises");
    b64(&Sha256::digest(canonical))
}

fn jwk(alg: SigningAlgorithm, kid: &str, members: BTreeMap<&'static str, String>) -> Value {
    let mut jwk = json!({ "kid": kid, "alg": alg.name(), "use": "sig" });
    for (name, value) in members {
        jwk[name] = Value::String(value);
    }
    jwk
}

/// What signs and verifies for one stored key, after checking that the
/// private key is the one the kid and the public JWK name.
pub struct KeyPair {
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
}

/// Checks a stored key (kid, JWK, decrypted private DER) for consistency and
/// returns its jsonwebtoken keys. A row whose public part was edited, or
/// whose private part belongs to another key, is refused.
pub fn key_pair(
    alg: SigningAlgorithm,
    kid: &str,
    public_jwk: &Value,
    der: &PrivateDer,
) -> Result<KeyPair, MaterialError> {
    let members = public_members(alg, der)?;
    let stored_matches = members
        .iter()
        .all(|(name, value)| public_jwk.get(name).and_then(Value::as_str) == Some(value))
        && public_jwk.get("kid").and_then(Value::as_str) == Some(kid)
        && public_jwk.get("alg").and_then(Value::as_str) == Some(alg.name());
    if thumbprint(&members) != kid || !stored_matches {
        return Err(MaterialError::Mismatch(kid.to_owned()));
    }
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(public_jwk.clone())
        .map_err(|e| MaterialError::BadJwk(e.to_string()))?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| MaterialError::BadJwk(e.to_string()))?;
    let encoding = match alg {
        SigningAlgorithm::Hs256 => return Err(MaterialError::Symmetric),
        SigningAlgorithm::EdDsa => EncodingKey::from_ed_der(der.expose()),
        SigningAlgorithm::Rs256 => EncodingKey::from_rsa_der(der.expose()),
    };
    Ok(KeyPair { encoding, decoding })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_key_has_an_okp_jwk_whose_thumbprint_is_its_kid() {
        let key = generate(SigningAlgorithm::EdDsa).unwrap();
        let jwk = &key.public_jwk;
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], key.kid.as_str());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(key.kid.len(), 43, "base64url of 32 bytes");
        assert!(key_pair(key.alg, &key.kid, jwk, &key.private_der).is_ok());
    }

    #[test]
    fn rfc_7638_example_thumbprint() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let members = BTreeMap::from([
            ("e", "AQAB".to_owned()),
            ("kty", "RSA".to_owned()),
            ("n", n.to_owned()),
        ]);
        assert_eq!(
            thumbprint(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_stored_key_whose_public_part_was_swapped_is_refused() {
        let one = generate(SigningAlgorithm::EdDsa).unwrap();
        let other = generate(SigningAlgorithm::EdDsa).unwrap();
        assert!(matches!(
            key_pair(one.alg, &one.kid, &other.public_jwk, &one.private_der),
            Err(MaterialError::Mismatch(_))
        ));
        assert!(matches!(
            key_pair(one.alg, &other.kid, &other.public_jwk, &one.private_der),
            Err(MaterialError::Mismatch(_))
        ));
    }

    #[test]
    fn the_private_key_is_not_printed() {
        let key = generate(SigningAlgorithm::EdDsa).unwrap();
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.private_der.expose())));
        assert!(format!("{key:?}").contains("<redacted>"));
    }
}
