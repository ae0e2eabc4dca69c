//! Signing keys of the asymmetric modes (SPEC 7.1, `jwt.algorithm` =
//! `EdDSA` or `RS256`): their material, their encryption at rest, the
//! `signing_keys` table, the lifecycle rules (publish ahead, sign, retire),
//! the cached key ring that signs and verifies, and the thread that keeps it
//! current. `crate::tokens::TokenKeys` signs and verifies through the ring;
//! in HS256 mode none of this runs.

mod material;
mod refresher;
mod ring;
mod schedule;
mod sealing;
mod store;

use std::sync::Arc;

use diesel::PgConnection;

use crate::clock::Clock;
use crate::config::JwtSettings;

pub use material::{generate, NewKey, PrivateDer};
pub use refresher::{spawn_refresher, CHECK_EVERY};
pub use ring::{KeyRing, LoadError, RingKey};
pub use schedule::{KeySchedule, KeyTimes, Start, RETIRE_MARGIN};
pub use sealing::{OpenError, Sealed, Sealer};
pub use store::{KeyMaker, MadeKey, StoredKey, CHANNEL};

/// The key ring of an asymmetric mode, ready to sign: makes the first key
/// (or a due one) under the lock, then loads the usable keys. `None` in
/// HS256 mode.
pub fn open_ring(
    conn: &mut PgConnection,
    jwt: &JwtSettings,
    schedule: KeySchedule,
    clock: Clock,
) -> anyhow::Result<Option<Arc<KeyRing>>> {
    let alg = jwt.algorithm();
    if !alg.is_asymmetric() {
        return Ok(None);
    }
    let sealer = Sealer::new(&jwt.secret);
    let maker = KeyMaker {
        alg,
        sealer: &sealer,
        schedule: &schedule,
    };
    if let Some(made) = maker.make_if_due(conn, || clock.now(), false)? {
        log::info!(
            "made signing key {} ({alg}), signing from {}",
            made.kid,
            made.signs_from
        );
    }
    Ok(Some(KeyRing::load(conn, alg, sealer, schedule, clock)?))
}
