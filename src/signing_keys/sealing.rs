//! Encryption at rest of the private signing keys: AES-256-GCM under a key
//! derived from `jwt.secret` with HKDF-SHA256. A dump of `signing_keys`
//! without the secret cannot sign; the associated data (kid and algorithm)
//! ties each ciphertext to its row.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use super::material::PrivateDer;
use crate::config::SigningAlgorithm;
use crate::tokens::SecretKey;

/// HKDF salt and info: constants, so that one secret always yields the same
/// key; "v1" leaves room for another scheme beside this one.
const SALT: &[u8] = b"authgate signing-key encryption v1";
const INFO: &[u8] = b"aes-256-gcm private signing keys";

/// The nonce length of AES-GCM.
pub const NONCE_LEN: usize = 12;

/// A private key as stored: ciphertext (with its GCM tag) and nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the private key cannot be decrypted: another jwt.secret, or a row that was altered or moved"
)]
pub struct OpenError;

/// Seals and opens private keys. `Debug` prints nothing secret.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

/// The associated data of a row: its kid and algorithm.
fn associated_data(kid: &str, alg: SigningAlgorithm) -> Vec<u8> {
    format!("{kid}\n{}", alg.name()).into_bytes()
}

impl Sealer {
    pub fn new(secret: &SecretKey) -> Sealer {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(SALT), secret.expose())
            .expand(INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let cipher = Aes256Gcm::new(&key.into());
        key.fill(0);
        Sealer { cipher }
    }

    /// Encrypts a private key under a fresh random nonce.
    pub fn seal(&self, kid: &str, alg: SigningAlgorithm, der: &PrivateDer) -> Sealed {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(kid, alg);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: der.expose(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a small buffer cannot fail");
        Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
        }
    }

    /// Decrypts a stored private key; fails for another secret, another
    /// row's kid or algorithm, or any altered byte.
    pub fn open(
        &self,
        kid: &str,
        alg: SigningAlgorithm,
        sealed: &Sealed,
    ) -> Result<PrivateDer, OpenError> {
        let nonce: [u8; NONCE_LEN] = sealed.nonce.as_slice().try_into().map_err(|_| OpenError)?;
        let aad = associated_data(kid, alg);
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map(PrivateDer::new)
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(secret: &str) -> Sealer {
        Sealer::new(&SecretKey::new(secret))
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const ED: SigningAlgorithm = SigningAlgorithm::EdDsa;

    #[test]
    fn a_sealed_key_opens_with_the_same_secret_kid_and_algorithm_only() {
        let der = PrivateDer::new(b"private key bytes".to_vec());
        let sealed = sealer(SECRET).seal("kid-1", ED, &der);
        assert_ne!(sealed.ciphertext, der.expose());
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        let opened = sealer(SECRET).open("kid-1", ED, &sealed).unwrap();
        assert_eq!(opened.expose(), der.expose());

        let other_secret = sealer("another-secret-another-secret-another");
        assert_eq!(
            other_secret.open("kid-1", ED, &sealed).unwrap_err(),
            OpenError
        );
        assert!(sealer(SECRET).open("kid-2", ED, &sealed).is_err());
        assert!(sealer(SECRET)
            .open("kid-1", SigningAlgorithm::Rs256, &sealed)
            .is_err());
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(sealer(SECRET).open("kid-1", ED, &flipped).is_err());
    }

    #[test]
    fn every_seal_has_its_own_nonce() {
        let der = PrivateDer::new(vec![7; 48]);
        let a = sealer(SECRET).seal("k", ED, &der);
        let b = sealer(SECRET).seal("k", ED, &der);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn the_sealer_is_not_printed() {
        assert_eq!(format!("{:?}", sealer(SECRET)), "Sealer(<redacted>)");
    }
}
