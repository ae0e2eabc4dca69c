//! The revoked-session set: how access tokens die within a second of their
//! session's revocation while their checks stay free of database queries.
//!
//! Every instance keeps the ids of sessions revoked recently enough that some
//! access token of theirs may still be unexpired: an id is forgotten
//! `access_ttl + 2` seconds after its revocation, so the set holds at most the
//! revocations of one access-token lifetime. It is filled at start-up from
//! `sessions.revoked_at`, then kept current by a listener thread on PostgreSQL
//! `LISTEN` (revocations `NOTIFY` on commit), with a catch-up query every few
//! seconds and after every reconnect so that a lost notification costs at most
//! that long.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::revocation::REVOKED_CHANNEL;
use crate::clock::Clock;
use crate::schema::sessions;

/// How often the listener looks for notifications.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How often it runs the catch-up query (which is also its heartbeat: the
/// feed's lag is the time since the last one succeeded), and how far back
/// that looks beyond the previous one.
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(1);
const CATCH_UP_OVERLAP_SECS: i64 = 30;
/// Past this lag the instance reports itself unready (SPEC 4.5).
pub const MAX_FEED_LAG: Duration = Duration::from_secs(5);
/// The listener's reconnect backoff: from the first, doubling to the last,
/// and back to the first once a connection has caught up.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_LAST: Duration = Duration::from_secs(5);

pub struct RevokedSessions {
    /// Session id → unix second after which it can be forgotten.
    entries: RwLock<HashMap<Uuid, i64>>,
    keep_secs: i64,
    clock: Clock,
    /// Real (monotonic) time of the last successful catch-up, in ms after
    /// `base`: how far behind the database this instance may be.
    base: Instant,
    synced_ms: AtomicU64,
}

impl RevokedSessions {
    pub fn new(access_ttl: chrono::Duration, clock: Clock) -> Arc<RevokedSessions> {
        Arc::new(RevokedSessions {
            entries: RwLock::new(HashMap::new()),
            keep_secs: access_ttl.num_seconds().saturating_add(2),
            clock,
            base: Instant::now(),
            synced_ms: AtomicU64::new(0),
        })
    }

    /// Notes that the set has just caught up with the database.
    pub fn mark_synced(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.synced_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the set last caught up with the database: the bound on
    /// how stale this instance's view of revocations can be.
    pub fn lag(&self) -> Duration {
        let synced = Duration::from_millis(self.synced_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(synced)
    }

    pub fn insert(&self, id: Uuid, revoked_at: DateTime<Utc>) {
        let forget_after = revoked_at.timestamp().saturating_add(self.keep_secs);
        if forget_after < self.clock.unix() {
            return;
        }
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, forget_after);
    }

    pub fn contains(&self, id: Uuid) -> bool {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets ids whose access tokens have all expired.
    pub fn prune(&self, now: DateTime<Utc>) {
        let now = now.timestamp();
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until >= now);
    }

    /// Loads the revocations since `since` (from the partial index on
    /// `sessions.revoked_at`).
    pub fn load_since(&self, conn: &mut PgConnection, since: DateTime<Utc>) -> QueryResult<usize> {
        let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = sessions::table
            .filter(sessions::revoked_at.gt(since))
            .select((sessions::id, sessions::revoked_at))
            .load(conn)?;
        let count = rows.len();
        for (id, at) in rows {
            self.insert(id, at.unwrap_or_else(|| self.clock.now()));
        }
        Ok(count)
    }

    /// The earliest revocation that can still matter.
    pub fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::seconds(self.keep_secs)
    }
}

/// Starts the listener thread on its own connection to `database_url`
/// (`database.listen_url`, or else `database.url`). It holds only a weak
/// reference, and ends once the application that owns the set is gone.
///
/// Behind a transaction pooler (no `listen_url`) the `LISTEN` reaches a
/// server connection that other clients get next, so notifications do not
/// arrive here: revocations then travel only by the catch-up, every
/// [`CATCH_UP_EVERY`].
pub fn spawn_listener(database_url: &str, set: &Arc<RevokedSessions>) -> std::io::Result<()> {
    let weak = Arc::downgrade(set);
    let url = database_url.to_owned();
    std::thread::Builder::new()
        .name("revocation-listener".into())
        .spawn(move || listen(&url, &weak))
        .map(drop)
}

fn listen(database_url: &str, weak: &Weak<RevokedSessions>) {
    let mut backoff = BACKOFF_FIRST;
    while weak.strong_count() > 0 {
        match listen_once(database_url, weak, &mut backoff) {
            Ok(()) => return,
            Err(err) => {
                log::warn!("revocation listener: {err}; reconnecting in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_LAST);
            }
        }
    }
}

/// One connection's life: LISTEN, catch up, then poll until an error.
/// Returns Ok only when the set has been dropped. Once the connection has
/// caught up, the backoff starts over.
fn listen_once(
    database_url: &str,
    weak: &Weak<RevokedSessions>,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    // A catch-up that a locked or slow server cannot answer gives up (the
    // role's deadlines, `db::run_migrations`), and the connection is made
    // again. Nothing is SET here: through a pooler it would stay behind.
    let mut conn = crate::db::establish(database_url)?;
    diesel::sql_query(format!("LISTEN {REVOKED_CHANNEL}")).execute(&mut conn)?;
    let mut last_catch_up: Option<(Instant, DateTime<Utc>)> = None;
    loop {
        let Some(set) = weak.upgrade() else {
            return Ok(());
        };
        let now = set.clock.now();
        if last_catch_up.is_none_or(|(at, _)| at.elapsed() >= CATCH_UP_EVERY) {
            let since = match last_catch_up {
                Some((_, from)) => from - chrono::Duration::seconds(CATCH_UP_OVERLAP_SECS),
                None => set.horizon(now),
            };
            set.load_since(&mut conn, since)?;
            set.prune(now);
            set.mark_synced();
            *backoff = BACKOFF_FIRST;
            last_catch_up = Some((Instant::now(), now));
        }
        for notification in conn.notifications_iter() {
            let notification = notification?;
            match Uuid::parse_str(&notification.payload) {
                Ok(id) => set.insert(id, now),
                Err(_) => log::warn!(
                    "revocation listener: ignoring payload {:?}",
                    notification.payload
                ),
            }
        }
        drop(set);
        std::thread::sleep(POLL_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Arc<RevokedSessions> {
        RevokedSessions::new(chrono::Duration::seconds(10), Clock::system())
    }

    #[test]
    fn ids_are_kept_for_one_access_lifetime_and_then_forgotten() {
        let set = set();
        let id = Uuid::new_v4();
        let now = Utc::now();
        set.insert(id, now);
        assert!(set.contains(id));
        set.prune(now + chrono::Duration::seconds(12));
        assert!(set.contains(id), "kept through access_ttl + 2 s");
        set.prune(now + chrono::Duration::seconds(13));
        assert!(!set.contains(id));
        assert!(set.is_empty());
    }

    #[test]
    fn revocations_too_old_to_matter_are_not_stored() {
        let set = set();
        set.insert(Uuid::new_v4(), Utc::now() - chrono::Duration::seconds(60));
        assert!(set.is_empty());
    }
}
