//! The form in which a refresh token or a client secret is stored: its
//! SHA-256, never itself.

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::Bytea;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a whole token string. A DBA who reads `refresh_tokens` sees
/// only these, and cannot turn one back into a usable token. It is the
/// `token_hash` column's Rust type, so hashes are compared as values, never
/// as raw bytes by hand.
#[derive(Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Bytea)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Equality in constant time, for checking a presented secret against
    /// a stored hash without telling by timing how much of it matched.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl ToSql<Bytea, Pg> for TokenHash {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
        <[u8] as ToSql<Bytea, Pg>>::to_sql(self.0.as_slice(), out)
    }
}

impl FromSql<Bytea, Pg> for TokenHash {
    fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<TokenHash> {
        let bytes = <Vec<u8> as FromSql<Bytea, Pg>>::from_sql(bytes)?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a stored SHA-256 hash is not 32 bytes")?;
        Ok(TokenHash(hash))
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

    #[test]
    fn matches_is_equality() {
        assert!(TokenHash::of("abc").matches(&TokenHash::of("abc")));
        assert!(!TokenHash::of("abc").matches(&TokenHash::of("abd")));
    }
}
