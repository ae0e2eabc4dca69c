//! The time every rule is judged by.
//!
//! Expiry, the grace window, session lifetimes and the revoked set all ask
//! one [`Clock`] rather than the system clock, so that the tests can move
//! time forward instead of sleeping through it. In production the clock is
//! the system clock: the offset stays zero.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// The system clock plus an offset that only tests move. Clones share the
/// offset, so every part of one application sees the same time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Unix seconds, as in `iat` and `exp`: `now().timestamp()`, without
    /// the calendar date that chrono computes on the way (every
    /// authenticated request asks).
    pub fn unix(&self) -> i64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let nanos = i128::try_from(since_epoch.as_nanos()).unwrap_or(i128::MAX)
            + i128::from(self.offset_ms.load(Ordering::Relaxed)) * 1_000_000;
        i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(i64::MAX)
    }

    /// Moves this clock (and its clones) forward.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 2);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_moves_of_the_clock() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(other.now() - before >= chrono::Duration::seconds(3600));
    }

    #[test]
    fn unix_seconds_are_the_whole_seconds_of_now_moves_included() {
        let clock = Clock::system();
        for by_ms in [0, 1, 999, 1_500, 86_400_000] {
            clock.advance(std::time::Duration::from_millis(by_ms));
            let before = clock.now().timestamp();
            let unix = clock.unix();
            let after = clock.now().timestamp();
            assert!(before <= unix && unix <= after, "{before} {unix} {after}");
        }
    }
}
