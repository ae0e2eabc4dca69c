//! The form in which a refresh token is stored: its SHA-256, never itself.

use sha2::{Digest, Sha256};

/// SHA-256 of a whole token string. A DBA who reads `refresh_tokens` sees
/// only these, and cannot turn one back into a usable token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for TokenHash {
    // A hash is not a secret, but a prefix is enough to tell rows apart.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_the_sha256_of_the_token() {
        let h = TokenHash::of("abc");
        assert_eq!(
            h.as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts ba7816bf"
        );
        assert_eq!(format!("{h:?}"), "TokenHash(ba7816bf…)");
    }
}
