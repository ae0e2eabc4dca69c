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

/// EdDSA and RS256: keys from an in-memory key ring.
mod ring_mode {
    use super::*;
    use crate::clock::Clock;
    use crate::signing_keys::{
        generate, KeyRing, KeySchedule, KeyTimes, NewKey, Sealer, StoredKey,
    };
    use chrono::{Duration, Utc};
    use std::sync::{Arc, OnceLock};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn schedule() -> KeySchedule {
        KeySchedule {
            rotation: None,
            publish_ahead: Duration::seconds(60),
            retire_after: Duration::seconds(600),
        }
    }

    /// One RSA key for every test (generating one takes a while).
    fn rsa_key() -> &'static NewKey {
        static KEY: OnceLock<NewKey> = OnceLock::new();
        KEY.get_or_init(|| generate(SigningAlgorithm::Rs256).unwrap())
    }

    /// A key whose times are given in seconds from now.
    fn row(key: &NewKey, created: i64, from: i64, until: Option<i64>) -> StoredKey {
        let now = Utc::now();
        let times = KeyTimes {
            created_at: now + Duration::seconds(created),
            signs_from: now + Duration::seconds(from),
            signs_until: until.map(|u| now + Duration::seconds(u)),
        };
        StoredKey::sealed_from(key, &Sealer::new(&SecretKey::new(SECRET)), times)
    }

    fn ring_keys(alg: SigningAlgorithm, rows: Vec<StoredKey>) -> TokenKeys {
        let ring = KeyRing::from_rows(
            alg,
            Sealer::new(&SecretKey::new(SECRET)),
            schedule(),
            Clock::system(),
            rows,
        )
        .unwrap();
        TokenKeys::with_ring(ring, "authgate", "clients")
    }

    fn one_key(alg: SigningAlgorithm) -> (NewKey, TokenKeys) {
        let key = match alg {
            SigningAlgorithm::Rs256 => rsa_key().clone(),
            _ => generate(alg).unwrap(),
        };
        let keys = ring_keys(alg, vec![row(&key, -100, -100, None)]);
        (key, keys)
    }

    fn header_of(token: &str) -> serde_json::Value {
        let head = token.split('.').next().unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    const ASYMMETRIC: [SigningAlgorithm; 2] = [SigningAlgorithm::EdDsa, SigningAlgorithm::Rs256];

    #[test]
    fn tokens_name_their_key_and_verify_and_signing_is_deterministic() {
        for alg in ASYMMETRIC {
            let (key, keys) = one_key(alg);
            let c = claims(TokenKind::Access);
            let token = keys.sign(&c);
            let header = header_of(&token);
            assert_eq!(header["alg"], alg.name());
            assert_eq!(header["kid"], key.kid.as_str());
            assert_eq!(keys.verify(&token, TokenKind::Access).unwrap().claims, c);
            assert_eq!(keys.sign(&c), token, "{alg} is deterministic");
            assert_eq!(keys.algorithm(), alg);
            assert_eq!(keys.jwks()["keys"][0]["kid"], key.kid.as_str());
        }
    }

    #[test]
    fn an_unknown_or_missing_kid_is_refused() {
        let (_, keys) = one_key(SigningAlgorithm::EdDsa);
        let (_, other) = one_key(SigningAlgorithm::EdDsa);
        let foreign = other.sign(&claims(TokenKind::Access));
        assert_eq!(
            keys.verify(&foreign, TokenKind::Access).unwrap_err(),
            TokenError::Invalid
        );
        let token = keys.sign(&claims(TokenKind::Access));
        let (_, rest) = token.split_once('.').unwrap();
        let no_kid = format!("{}.{rest}", b64(r#"{"alg":"EdDSA","typ":"JWT"}"#));
        assert!(keys.verify(&no_kid, TokenKind::Access).is_err());
    }

    #[test]
    fn a_header_alg_other_than_the_keys_is_refused() {
        let (key, keys) = one_key(SigningAlgorithm::EdDsa);
        let token = keys.sign(&claims(TokenKind::Access));
        let (_, rest) = token.split_once('.').unwrap();
        for alg in ["RS256", "HS256", "none", "ES256"] {
            let header = format!(r#"{{"alg":"{alg}","kid":"{}","typ":"JWT"}}"#, key.kid);
            let forged = format!("{}.{rest}", b64(&header));
            assert!(keys.verify(&forged, TokenKind::Access).is_err(), "{alg}");
        }
        // The old confusion: HS256 keyed with the public key's bytes.
        let x = key.public_jwk["x"].as_str().unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let confused = jsonwebtoken::encode(
            &header,
            &claims(TokenKind::Access),
            &EncodingKey::from_secret(x.as_bytes()),
        )
        .unwrap();
        assert!(keys.verify(&confused, TokenKind::Access).is_err());
    }

    #[test]
    fn hs256_tokens_are_refused_by_ring_keys_and_the_reverse() {
        let (_, ring) = one_key(SigningAlgorithm::EdDsa);
        let hs = keys().sign(&claims(TokenKind::Access));
        assert!(ring.verify(&hs, TokenKind::Access).is_err());
        let ed = ring.sign(&claims(TokenKind::Access));
        assert!(keys().verify(&ed, TokenKind::Access).is_err());
        assert_eq!(keys().jwks(), serde_json::json!({ "keys": [] }));
        let (_, rsa) = one_key(SigningAlgorithm::Rs256);
        assert!(rsa.verify(&ed, TokenKind::Access).is_err());
        assert!(ring
            .verify(&rsa.sign(&claims(TokenKind::Access)), TokenKind::Access)
            .is_err());
    }

    #[test]
    fn a_key_published_ahead_verifies_but_does_not_sign_yet() {
        let old = generate(SigningAlgorithm::EdDsa).unwrap();
        let new = generate(SigningAlgorithm::EdDsa).unwrap();
        let keys = ring_keys(
            SigningAlgorithm::EdDsa,
            vec![row(&old, -100, -100, Some(50)), row(&new, -10, 50, None)],
        );
        let token = keys.sign(&claims(TokenKind::Access));
        assert_eq!(header_of(&token)["kid"], old.kid.as_str());
        let jwks = keys.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [new.kid.as_str(), old.kid.as_str()]);
    }

    #[test]
    fn a_retired_key_is_neither_published_nor_accepted() {
        let old = generate(SigningAlgorithm::EdDsa).unwrap();
        let new = generate(SigningAlgorithm::EdDsa).unwrap();
        let old_only = ring_keys(SigningAlgorithm::EdDsa, vec![row(&old, -5000, -5000, None)]);
        let token = old_only.sign(&claims(TokenKind::Access));
        // The successor took over 601 s ago; retire_after is 600 s.
        let keys = ring_keys(
            SigningAlgorithm::EdDsa,
            vec![
                row(&old, -5000, -5000, Some(-601)),
                row(&new, -700, -601, None),
            ],
        );
        assert!(keys.verify(&token, TokenKind::Access).is_err());
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 1);
        // 599 s after the hand-over it was still accepted.
        let keys = ring_keys(
            SigningAlgorithm::EdDsa,
            vec![
                row(&old, -5000, -5000, Some(-599)),
                row(&new, -700, -599, None),
            ],
        );
        assert!(keys.verify(&token, TokenKind::Access).is_ok());
    }

    #[test]
    fn a_token_is_signed_again_with_the_key_that_first_signed_it() {
        let old = generate(SigningAlgorithm::EdDsa).unwrap();
        let new = generate(SigningAlgorithm::EdDsa).unwrap();
        let c = claims(TokenKind::Refresh);
        let first = ring_keys(SigningAlgorithm::EdDsa, vec![row(&old, -100, -100, None)]).sign(&c);
        let hash = TokenHash::of(&first);
        // Since then a new key has taken over.
        let keys = ring_keys(
            SigningAlgorithm::EdDsa,
            vec![row(&old, -100, -100, Some(-5)), row(&new, -60, -5, None)],
        );
        assert_ne!(keys.sign(&c), first);
        let signed_at = Utc::now() - Duration::seconds(30);
        assert_eq!(keys.resign(&c, signed_at, &hash), first);
        // Even when the time given points at the other key.
        assert_eq!(keys.resign(&c, Utc::now(), &hash), first);
        // A token that no key makes again: the caller's hash check fails.
        let other = TokenHash::of("something else");
        assert_ne!(TokenHash::of(&keys.resign(&c, signed_at, &other)), other);
    }

    #[test]
    fn a_row_sealed_under_another_secret_is_left_out() {
        let ours = generate(SigningAlgorithm::EdDsa).unwrap();
        let theirs = generate(SigningAlgorithm::EdDsa).unwrap();
        let mut foreign = row(&theirs, -10, -10, None);
        let resealed = Sealer::new(&SecretKey::new("another-secret-another-secret-another")).seal(
            &theirs.kid,
            theirs.alg,
            &theirs.private_der,
        );
        foreign.private_key = resealed.ciphertext;
        foreign.nonce = resealed.nonce;
        let keys = ring_keys(
            SigningAlgorithm::EdDsa,
            vec![row(&ours, -100, -100, None), foreign],
        );
        let token = keys.sign(&claims(TokenKind::Access));
        assert_eq!(header_of(&token)["kid"], ours.kid.as_str());
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 1);
        let ring: Option<&Arc<KeyRing>> = keys.ring();
        assert!(ring.is_some());
    }
}
