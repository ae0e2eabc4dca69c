//! The lifecycle of signing keys as pure rules: which key signs at a given
//! time, how long a key stays published, when a new key is due and when it
//! starts signing. The store and the key ring only apply them.

use chrono::{DateTime, Duration, Utc};

use crate::config::Settings;

/// Added to a retired key's publication beyond the longest token lifetime:
/// an instance that has not yet reloaded the key set (it does every
/// [`super::refresher::CHECK_EVERY`]) may still sign with the old key for a
/// moment after its successor took over.
pub const RETIRE_MARGIN: Duration = Duration::seconds(60);

/// The times of one key, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    /// When the next key takes over; `None` for the newest key.
    pub signs_until: Option<DateTime<Utc>>,
}

impl KeyTimes {
    /// The order of keys, newest first: by creation, then by start.
    pub fn newest_first(a: &KeyTimes, b: &KeyTimes) -> std::cmp::Ordering {
        (b.created_at, b.signs_from).cmp(&(a.created_at, a.signs_from))
    }
}

/// When a new key starts signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At once: nothing this instance can sign with would sign otherwise
    /// (the first key; a changed `jwt.secret`).
    Now,
    /// `jwt.key_publish_ahead_secs` from now, so that services that cache
    /// the JWKS know it before they meet a token it signed.
    Ahead,
}

/// The settings that drive the lifecycle, as durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    /// `None`: no new key by itself.
    pub rotation: Option<Duration>,
    pub publish_ahead: Duration,
    /// How long a key stays published after it stops signing: the longest
    /// life of a token it signed, plus [`RETIRE_MARGIN`].
    pub retire_after: Duration,
}

impl KeySchedule {
    pub fn of(settings: &Settings) -> KeySchedule {
        let policy = settings.session_policy();
        let longest_token = policy
            .access_ttl
            .max(policy.refresh_ttl)
            .min(policy.max_lifetime);
        KeySchedule {
            rotation: settings.jwt.key_rotation(),
            publish_ahead: settings.jwt.key_publish_ahead(),
            retire_after: longest_token + RETIRE_MARGIN,
        }
    }

    /// When a key leaves the JWKS: every token it signed has expired by then.
    pub fn retires_at(&self, key: &KeyTimes) -> Option<DateTime<Utc>> {
        key.signs_until.map(|until| until + self.retire_after)
    }

    /// Whether a key is in the JWKS and accepted for verification at `now`:
    /// from its creation (ahead of its signing) until it retires.
    pub fn is_published(&self, key: &KeyTimes, now: DateTime<Utc>) -> bool {
        self.retires_at(key).is_none_or(|at| now < at)
    }

    /// Whether a new key must be made at `now`, and when it would start,
    /// given every stored key of the algorithm (`usable`: whether this
    /// instance can decrypt it). `forced` is `authgate keys rotate`.
    pub fn new_key_due(
        &self,
        keys: &[(KeyTimes, bool)],
        now: DateTime<Utc>,
        forced: bool,
    ) -> Option<Start> {
        let can_sign_now = keys
            .iter()
            .any(|(key, usable)| *usable && key.signs_from <= now && self.is_published(key, now));
        if !can_sign_now {
            return Some(Start::Now);
        }
        let newest = keys
            .iter()
            .map(|(key, _)| key)
            .min_by(|a, b| KeyTimes::newest_first(a, b));
        let rotation_due = match (self.rotation, newest) {
            (Some(every), Some(newest)) => now >= newest.created_at + every,
            _ => false,
        };
        (forced || rotation_due).then_some(Start::Ahead)
    }

    /// The creation and start of a new key. Creation and start never go
    /// back before the newest key's, so that the order of keys is the same
    /// for every instance whatever its clock.
    pub fn new_key_times(
        &self,
        newest: Option<&KeyTimes>,
        start: Start,
        now: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let created_at = newest.map_or(now, |n| now.max(n.created_at + Duration::milliseconds(1)));
        let signs_from = match start {
            Start::Now => created_at,
            Start::Ahead => {
                let ahead = created_at + self.publish_ahead;
                newest.map_or(ahead, |n| ahead.max(n.signs_from))
            }
        };
        (created_at, signs_from)
    }
}

/// The key that signs at `now` among those given (each with its times):
/// the newest whose start has come; if none has started, the one that
/// starts first.
pub fn signing_key<T>(
    keys: impl IntoIterator<Item = (KeyTimes, T)>,
    now: DateTime<Utc>,
) -> Option<T> {
    let mut keys: Vec<(KeyTimes, T)> = keys.into_iter().collect();
    keys.sort_by(|(a, _), (b, _)| KeyTimes::newest_first(a, b));
    let started = keys.iter().position(|(key, _)| key.signs_from <= now);
    let index = started.or_else(|| {
        keys.iter()
            .enumerate()
            .min_by_key(|(_, (key, _))| key.signs_from)
            .map(|(i, _)| i)
    })?;
    Some(keys.swap_remove(index).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn key(created: i64, from: i64, until: Option<i64>) -> KeyTimes {
        KeyTimes {
            created_at: t(created),
            signs_from: t(from),
            signs_until: until.map(t),
        }
    }

    fn schedule() -> KeySchedule {
        KeySchedule {
            rotation: Some(Duration::seconds(1000)),
            publish_ahead: Duration::seconds(100),
            retire_after: Duration::seconds(500),
        }
    }

    #[test]
    fn the_newest_started_key_signs_and_a_published_ahead_one_waits() {
        let first = key(0, 0, Some(1100));
        let second = key(1000, 1100, None);
        let keys = || [(first, "first"), (second, "second")];
        assert_eq!(signing_key(keys(), t(500)), Some("first"));
        assert_eq!(signing_key(keys(), t(1099)), Some("first"));
        assert_eq!(signing_key(keys(), t(1100)), Some("second"));
        assert_eq!(signing_key([(second, "second")], t(0)), Some("second"));
        assert_eq!(signing_key(Vec::<(KeyTimes, ())>::new(), t(0)), None);
    }

    #[test]
    fn a_retired_key_stays_published_until_its_last_token_has_expired() {
        let retired = key(0, 0, Some(1100));
        assert!(schedule().is_published(&retired, t(1599)));
        assert!(!schedule().is_published(&retired, t(1600)));
        assert!(schedule().is_published(&key(0, 0, None), t(1_000_000)));
        assert!(
            schedule().is_published(&key(1000, 1100, None), t(1000)),
            "ahead"
        );
    }

    #[test]
    fn the_first_key_and_a_key_after_a_changed_secret_sign_at_once() {
        assert_eq!(schedule().new_key_due(&[], t(0), false), Some(Start::Now));
        let undecryptable = (key(0, 0, None), false);
        assert_eq!(
            schedule().new_key_due(&[undecryptable], t(10), false),
            Some(Start::Now)
        );
        let retired_only = (key(0, 0, Some(100)), true);
        assert_eq!(
            schedule().new_key_due(&[retired_only], t(600), false),
            Some(Start::Now)
        );
    }

    #[test]
    fn a_new_key_is_due_when_the_newest_is_as_old_as_the_rotation() {
        let keys = [(key(0, 0, None), true)];
        assert_eq!(schedule().new_key_due(&keys, t(999), false), None);
        assert_eq!(
            schedule().new_key_due(&keys, t(1000), false),
            Some(Start::Ahead)
        );
        // A pending key counts as the newest: no second one.
        let pending = [(key(0, 0, Some(1100)), true), (key(1000, 1100, None), true)];
        assert_eq!(schedule().new_key_due(&pending, t(1050), false), None);
        let never = KeySchedule {
            rotation: None,
            ..schedule()
        };
        assert_eq!(never.new_key_due(&keys, t(1_000_000), false), None);
        assert_eq!(
            never.new_key_due(&keys, t(5), true),
            Some(Start::Ahead),
            "keys rotate"
        );
    }

    #[test]
    fn new_keys_start_ahead_and_never_before_the_newest() {
        let s = schedule();
        assert_eq!(s.new_key_times(None, Start::Now, t(5)), (t(5), t(5)));
        let newest = key(0, 100, None);
        assert_eq!(
            s.new_key_times(Some(&newest), Start::Ahead, t(50)),
            (t(50), t(150))
        );
        // A caller whose clock is behind still orders after the newest.
        let (created, from) = s.new_key_times(Some(&newest), Start::Ahead, t(-10));
        assert!(created > newest.created_at);
        assert!(from >= newest.signs_from);
    }
}
