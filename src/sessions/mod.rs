//! Sessions and their refresh tokens: issuing pairs, rotation with reuse
//! detection, revocation (one owner: [`Revocations`]), and the revoked-session
//! set that lets access tokens die early.

mod exchange;
mod fast_rotation;
mod issuer;
mod model;
mod open;
mod revocation;
mod revoked;
mod rotation;
mod rotation_queue;

pub use exchange::Exchange;
pub use fast_rotation::{
    rotate_batch, rotate_in_one_statement, MintedRotation, Rotated, RotationArgs,
};
pub use issuer::{MintedRefresh, Subject, TokenIssuer, TokenPair};
pub use model::{NewSession, RefreshToken, RevokeReason, Session};
pub use open::{open_session, Device};
pub use revocation::{Revocations, Revoker, REVOKED_CHANNEL};
pub use revoked::{spawn_listener, RevokedSessions, MAX_FEED_LAG};
pub use rotation::{access_evidence, judge, reissue, AccessEvidence, ReissueOutcome, Verdict};
pub use rotation_queue::{RotationQueue, MOST_PER_BATCH};
