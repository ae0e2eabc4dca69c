//! bcrypt, with a decoy hash so that a login for an unknown email costs the
//! same verification as a wrong password, and a gate so that at most one
//! hash per core runs at once.
//!
//! A bcrypt run holds a blocking-pool thread for tens to hundreds of
//! milliseconds. Without the gate a flood of signups or logins would take
//! every blocking thread, and the database work that shares the pool
//! (`db::run_blocking`) would queue behind them. Waiting for the gate is
//! asynchronous: it costs no thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::IntCounterVec;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Hashes and verifies passwords at the configured cost, on the blocking
/// pool, at most [`PasswordHasher::concurrency`] at once. Clones share the
/// gate.
#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    decoy: Arc<String>,
    gate: Arc<Gate>,
    runs: Option<IntCounterVec>,
}

struct Gate {
    permits: Arc<Semaphore>,
    size: usize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// Counts one bcrypt run while it lasts, and the most seen at once.
struct Running<'a>(&'a Gate);

impl<'a> Running<'a> {
    fn start(gate: &'a Gate) -> Running<'a> {
        let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
        gate.peak.fetch_max(now, Ordering::SeqCst);
        Running(gate)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    /// Computes the decoy hash once, at the same cost as real ones; one
    /// bcrypt run at a time per core.
    pub fn new(cost: u32) -> PasswordHasher {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordHasher::with_concurrency(cost, cores)
    }

    /// At most `concurrency` (at least 1) bcrypt runs at once.
    pub fn with_concurrency(cost: u32, concurrency: usize) -> PasswordHasher {
        let size = concurrency.max(1);
        let decoy = bcrypt::hash("authgate decoy password", cost).expect("cost was validated");
        PasswordHasher {
            cost,
            decoy: Arc::new(decoy),
            gate: Arc::new(Gate {
                permits: Arc::new(Semaphore::new(size)),
                size,
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
            runs: None,
        }
    }

    /// Counts every run in `runs`, labelled `hash` or `verify` (a metric).
    pub fn counting(mut self, runs: IntCounterVec) -> PasswordHasher {
        self.runs = Some(runs);
        self
    }

    /// How many bcrypt runs may be under way at once.
    pub fn concurrency(&self) -> usize {
        self.gate.size
    }

    /// The most bcrypt runs seen under way at once so far.
    pub fn peak(&self) -> usize {
        self.gate.peak.load(Ordering::SeqCst)
    }

    /// The bcrypt hash of a new password.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run("hash", move |hasher| hasher.hash_now(&password))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Verifies against the stored hash, or against the decoy when there is
    /// no user; in that case the answer is always false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        self.run("verify", move |hasher| {
            hasher.verify_now(&password, stored.as_deref())
        })
        .await
    }

    /// Waits for a permit (asynchronously), then runs `f` on the blocking
    /// pool. The permit goes with the work, so a request dropped while it
    /// runs does not free its slot early.
    async fn run<T, F>(&self, op: &'static str, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .gate
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        let hasher = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _running = Running::start(&hasher.gate);
            if let Some(runs) = &hasher.runs {
                runs.with_label_values(&[op]).inc();
            }
            f(&hasher)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("bcrypt task failed: {e}")))
    }

    fn hash_now(&self, password: &str) -> anyhow::Result<String> {
        Ok(bcrypt::hash(password, self.cost)?)
    }

    fn verify_now(&self, password: &str, stored: Option<&str>) -> bool {
        match stored {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.decoy);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(4);
        let hash = hasher.hash_now("correct horse").unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(hasher.verify_now("correct horse", Some(&hash)));
        assert!(!hasher.verify_now("wrong horse", Some(&hash)));
    }

    #[test]
    fn no_user_never_verifies() {
        let hasher = PasswordHasher::new(4);
        assert!(!hasher.verify_now("authgate decoy password", None));
    }

    #[test]
    fn the_gate_has_one_permit_per_core() {
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(PasswordHasher::new(4).concurrency(), cores);
        assert_eq!(PasswordHasher::with_concurrency(4, 0).concurrency(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_hashes_and_verifications_runs_at_most_the_permits_at_once() {
        // The blocking pool would run all 24 at once (it has hundreds of
        // threads); the gate lets 2 through at a time.
        let hasher = PasswordHasher::with_concurrency(6, 2);
        let stored = hasher.hash("correct horse".into()).await.unwrap();
        let runs: Vec<_> = (0..24)
            .map(|i| {
                let hasher = hasher.clone();
                let stored = stored.clone();
                tokio::spawn(async move {
                    if i % 3 == 0 {
                        hasher.hash("a new password".into()).await.map(|_| false)
                    } else {
                        hasher.verify("wrong horse".into(), Some(stored)).await
                    }
                })
            })
            .collect();
        for run in runs {
            assert!(!run.await.unwrap().unwrap());
        }
        assert_eq!(hasher.peak(), 2, "two at once, never more");
        assert!(hasher
            .verify("correct horse".into(), Some(stored))
            .await
            .unwrap());
    }
}
