//! Login brute-force limits: failed logins counted per email and per IP over
//! a sliding window (SPEC 3). Kept in this instance's memory: each instance
//! counts on its own, so N instances allow at most N times the limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitSettings;
use crate::error::ApiError;

/// Above this many keys, a failure also sweeps keys whose window has passed.
const PRUNE_ABOVE_KEYS: usize = 10_000;

pub struct LoginLimiter {
    per_email: u32,
    per_ip: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(settings: &RateLimitSettings) -> LoginLimiter {
        LoginLimiter {
            per_email: settings.login_failures_per_email,
            per_ip: settings.login_failures_per_ip,
            window: Duration::from_secs(settings.window_secs),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, ip: Option<&str>) -> (String, Option<String>) {
        (
            format!("email:{}", email.to_lowercase()),
            ip.map(|ip| format!("ip:{ip}")),
        )
    }

    /// 429 with the seconds until the oldest counted failure leaves the
    /// window, when the email or the IP is at its limit; a correct password
    /// does not get past it.
    pub fn check(&self, email: &str, ip: Option<&str>) -> Result<(), ApiError> {
        self.check_at(email, ip, Instant::now())
    }

    fn check_at(&self, email: &str, ip: Option<&str>, now: Instant) -> Result<(), ApiError> {
        let (email_key, ip_key) = Self::keys(email, ip);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for (key, limit) in [(Some(email_key), self.per_email), (ip_key, self.per_ip)] {
            let Some(times) = key.and_then(|k| failures.get_mut(&k)) else {
                continue;
            };
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                times.pop_front();
            }
            if times.len() >= limit as usize {
                let oldest = times[times.len() - limit as usize];
                wait = wait.max(self.window.saturating_sub(now.duration_since(oldest)));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            // Whole seconds, rounded up, at least 1.
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Err(ApiError::RateLimited {
                retry_after_secs: retry_after_secs.max(1),
            })
        }
    }

    pub fn record_failure(&self, email: &str, ip: Option<&str>) {
        self.record_failure_at(email, ip, Instant::now());
    }

    fn record_failure_at(&self, email: &str, ip: Option<&str>, now: Instant) {
        let (email_key, ip_key) = Self::keys(email, ip);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > PRUNE_ABOVE_KEYS {
            let window = self.window;
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        for key in [Some(email_key), ip_key].into_iter().flatten() {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            // Only the newest `limit` failures matter for the decision.
            while times.len() > self.per_email.max(self.per_ip) as usize {
                times.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_email: u32, per_ip: u32) -> LoginLimiter {
        LoginLimiter::new(&RateLimitSettings {
            login_failures_per_email: per_email,
            login_failures_per_ip: per_ip,
            window_secs: 60,
        })
    }

    #[test]
    fn the_limit_is_reached_after_n_failures_for_one_email_in_any_case() {
        let l = limiter(3, 100);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at("a@x.io", Some("1.1.1.1"), t).is_ok());
            l.record_failure_at("A@X.io", Some("1.1.1.1"), t);
        }
        match l.check_at("a@x.io", Some("2.2.2.2"), t + Duration::from_millis(500)) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 60),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            l.check_at("b@x.io", Some("2.2.2.2"), t).is_ok(),
            "other emails are not slowed"
        );
    }

    #[test]
    fn the_ip_limit_counts_across_emails() {
        let l = limiter(100, 2);
        let t = Instant::now();
        l.record_failure_at("a@x.io", Some("9.9.9.9"), t);
        l.record_failure_at("b@x.io", Some("9.9.9.9"), t);
        assert!(l.check_at("c@x.io", Some("9.9.9.9"), t).is_err());
        assert!(l.check_at("c@x.io", Some("8.8.8.8"), t).is_ok());
    }

    #[test]
    fn failures_leave_the_window() {
        let l = limiter(1, 100);
        let t = Instant::now();
        l.record_failure_at("a@x.io", None, t);
        assert!(l
            .check_at("a@x.io", None, t + Duration::from_secs(59))
            .is_err());
        assert!(l
            .check_at("a@x.io", None, t + Duration::from_secs(60))
            .is_ok());
    }
}
