//! bcrypt, with a decoy hash so that a login for an unknown email costs the
//! same verification as a wrong password.

use std::sync::Arc;

/// Hashes and verifies passwords at the configured cost. Its methods are
/// CPU-bound for tens to hundreds of milliseconds: call them on the blocking
/// pool, never on an actix worker.
#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    decoy: Arc<String>,
}

impl PasswordHasher {
    /// Computes the decoy hash once, at the same cost as real ones.
    pub fn new(cost: u32) -> PasswordHasher {
        let decoy = bcrypt::hash("authgate decoy password", cost).expect("cost was validated");
        PasswordHasher {
            cost,
            decoy: Arc::new(decoy),
        }
    }

    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        Ok(bcrypt::hash(password, self.cost)?)
    }

    /// Verifies against the stored hash, or against the decoy when there is
    /// no user; in that case the answer is always false.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        match stored {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.decoy);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(4);
        let hash = hasher.hash("correct horse").unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(hasher.verify("correct horse", Some(&hash)));
        assert!(!hasher.verify("wrong horse", Some(&hash)));
    }

    #[test]
    fn no_user_never_verifies() {
        let hasher = PasswordHasher::new(4);
        assert!(!hasher.verify("authgate decoy password", None));
    }
}
