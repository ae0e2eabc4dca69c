//! Keeps the key ring current and makes keys on schedule: one thread per
//! instance, on a connection of its own that `LISTEN`s on
//! [`super::CHANNEL`]. It reloads the ring when a new key is announced, when
//! a token named a kid the ring lacks (at most once a second), and at every
//! check; a check, every [`CHECK_EVERY`] of real time or of the
//! application's clock (so that tests that move the clock see it at once),
//! makes a new key when one is due ([`super::KeyMaker`]). Behind a
//! transaction pooler the notifications do not arrive, and the periodic
//! check alone brings new keys, within [`CHECK_EVERY`]; the publication
//! ahead (an hour by default) is far longer than that.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::ring::{KeyRing, LoadError};
use super::store::{KeyMaker, CHANNEL};

/// How often the key set is checked and reloaded without being told.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// How often the connection is polled for notifications.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// The most often an unknown kid makes the ring reload.
const STALE_RELOAD_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_LAST: Duration = Duration::from_secs(5);

/// Starts the refresher thread. It holds only a weak reference to the ring
/// and ends once the application that owns it is gone.
pub fn spawn_refresher(database_url: &str, ring: &Arc<KeyRing>) -> std::io::Result<()> {
    let weak = Arc::downgrade(ring);
    let url = database_url.to_owned();
    std::thread::Builder::new()
        .name("signing-keys".into())
        .spawn(move || refresh(&url, &weak))
        .map(drop)
}

fn refresh(database_url: &str, weak: &Weak<KeyRing>) {
    let mut backoff = BACKOFF_FIRST;
    while weak.strong_count() > 0 {
        match refresh_once(database_url, weak, &mut backoff) {
            Ok(()) => return,
            Err(err) => {
                log::warn!("signing keys: {err:#}; reconnecting in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_LAST);
            }
        }
    }
}

/// Whether a check is due: never made on this connection, or
/// [`CHECK_EVERY`] since the last one by the wall clock or by the
/// application's clock (which tests move), or that clock went back.
fn check_due(last: Option<(Instant, DateTime<Utc>)>, now: DateTime<Utc>) -> bool {
    let every = chrono::Duration::from_std(CHECK_EVERY).expect("a short duration");
    last.is_none_or(|(at, app_at)| {
        at.elapsed() >= CHECK_EVERY || now - app_at >= every || now < app_at
    })
}

/// One connection's life. Returns Ok only once the ring has been dropped.
fn refresh_once(
    database_url: &str,
    weak: &Weak<KeyRing>,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    // The role's deadlines apply (`db::run_migrations`); nothing is SET
    // here, since through a pooler it would stay behind.
    let mut conn = crate::db::establish(database_url)?;
    diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
    let mut last_check = None;
    let mut last_reload = Instant::now();
    loop {
        let Some(ring) = weak.upgrade() else {
            return Ok(());
        };
        let mut reload = false;
        for notification in conn.notifications_iter() {
            notification?;
            reload = true;
        }
        let now = ring.now();
        if check_due(last_check, now) {
            let maker = KeyMaker {
                alg: ring.algorithm(),
                sealer: ring.sealer(),
                schedule: ring.schedule(),
            };
            if let Some(made) = maker.make_if_due(&mut conn, || ring.now(), false)? {
                log::info!(
                    "made signing key {} ({}), signing from {}",
                    made.kid,
                    ring.algorithm(),
                    made.signs_from
                );
            }
            reload = true;
            last_check = Some((Instant::now(), now));
            *backoff = BACKOFF_FIRST;
        }
        if last_reload.elapsed() >= STALE_RELOAD_EVERY && ring.take_stale() {
            reload = true;
        }
        if reload {
            match ring.reload(&mut conn) {
                Ok(_) => {}
                Err(err @ LoadError::NoUsableKey(_)) => log::error!("signing keys: {err}"),
                Err(err) => return Err(err.into()),
            }
            last_reload = Instant::now();
        }
        drop(ring);
        std::thread::sleep(POLL_EVERY);
    }
}
