//! Sessions and their refresh tokens: issuing pairs, rotation with reuse
//! detection, revocation, and the revoked-session set that lets access tokens
//! die early.

mod issuer;
mod model;
mod open;
mod revoked;
mod rotation;

pub use issuer::{MintedRefresh, TokenIssuer, TokenPair};
pub use model::{
    revoke_all_for_user, revoke_sessions, NewSession, RefreshToken, RevokeReason, Session,
    REVOKED_CHANNEL,
};
pub use open::{open_session, Device};
pub use revoked::{spawn_listener, RevokedSessions};
pub use rotation::{judge, reissue, AccessEvidence, ReissueOutcome, Verdict};
