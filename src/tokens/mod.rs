//! JWTs: the claims we issue, signing and verification with a pinned
//! algorithm, and the SHA-256 hash under which refresh tokens are stored.

mod bearer;
mod claims;
mod hash;
mod keys;

pub use bearer::parse_bearer;
pub use claims::{Claims, TokenKind};
pub use hash::TokenHash;
pub use keys::{SecretKey, TokenError, TokenKeys, VerifiedToken};
