//! Reissues in batches: the one-statement rotations of requests that arrive
//! while others are at the database go to it together, as one statement
//! and one commit ([`super::fast_rotation::rotate_batch`]).
//!
//! At most a quarter of the pool's connections run a batch at once (one
//! per PostgreSQL core, for a pool sized as the README advises). A request whose
//! rotation finds one of them free starts a batch of its own at once, so a
//! lone request waits for nothing; under load, rotations queue while the
//! batches run, and each batch that ends takes all that have queued (up to
//! [`MOST_PER_BATCH`]). With 64 requests in flight on two cores, a
//! rotation alone in its statement cost PostgreSQL 450-560 µs of CPU, most
//! of it commits, round trips and switching between backends; in batches
//! it costs 190-230 µs, and authgate itself spends a third as much per
//! rotation, on fewer hand-offs to blocking threads (README, "Performance").
//!
//! A batch that fails as a whole rotates nothing. When the database is out
//! of reach or past a deadline, every request in it gets 503, as it would
//! have alone; any other failure (a deadlock, which PostgreSQL breaks by
//! rolling one side back) sends every request down the full transaction,
//! which decides for itself. A request waits at most
//! `database.request_deadline_ms` for its batch, and each rotation carries
//! its request's commit-by time, past which the statement leaves it alone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::fast_rotation::{rotate_batch, Rotated, RotationArgs};
use crate::db::{run_blocking, Db, DbUnavailable};
use crate::error::ApiError;

/// The most rotations sent in one statement. Longer batches make the
/// requests that just missed one wait longer: with 64 in flight on two
/// cores, a cap of 16 gave a p99 of 21 ms where 64 gave 24-29 ms.
pub const MOST_PER_BATCH: usize = 16;

/// The queue of rotations waiting for a batch. Cheap to clone.
#[derive(Clone)]
pub struct RotationQueue {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// The most batches at the database at once.
    most_batches: usize,
    state: Mutex<State>,
    batches_sent: AtomicU64,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Job>,
    /// Tasks sending batches now; each takes whatever has queued when its
    /// batch ends, and stops when nothing has.
    senders: usize,
}

struct Job {
    args: RotationArgs,
    answer: oneshot::Sender<Answer>,
}

/// What a batch tells each of its requests.
#[derive(Clone)]
enum Answer {
    /// The rotation, or `None` when it is for the full transaction.
    Done(Option<Rotated>),
    /// The database is out of reach or past a deadline: 503.
    Unavailable,
}

impl RotationQueue {
    /// A queue over `db`, sending at most a quarter of its connections'
    /// worth of batches at once (at least one). On two cores with a pool
    /// of 10, 3 at once gave 5,800-6,100 rotations/s at a p99 of 21 ms;
    /// 5 gave 5,300 at 26 ms, 8 gave 5,400 at 28 ms.
    pub fn new(db: Db) -> RotationQueue {
        let most_batches = (db.pool().max_size() as usize).div_ceil(4).max(1);
        RotationQueue {
            inner: Arc::new(Inner {
                db,
                most_batches,
                state: Mutex::new(State::default()),
                batches_sent: AtomicU64::new(0),
            }),
        }
    }

    /// Rotates as `args` say, in the next batch. `Ok(None)`: some
    /// precondition did not hold, or the batch failed; the caller runs the
    /// full transaction. `Err`: 503, as the request would have had alone
    /// (no answer within its deadline, or the database out of reach).
    pub async fn rotate(&self, args: RotationArgs) -> Result<Option<Rotated>, ApiError> {
        let (answer, answered) = oneshot::channel();
        let start_sender = {
            let mut state = self.inner.lock();
            state.waiting.push_back(Job { args, answer });
            let free = state.senders < self.inner.most_batches;
            if free {
                state.senders += 1;
            }
            free
        };
        if start_sender {
            tokio::spawn(Sender::new(self.inner.clone()).run());
        }
        let deadline = self.inner.db.deadline();
        match tokio::time::timeout(deadline, answered).await {
            Ok(Ok(Answer::Done(rotated))) => Ok(rotated),
            Ok(Ok(Answer::Unavailable)) => Err(ApiError::Unavailable),
            Ok(Err(_)) => {
                Err(DbUnavailable::Task("the rotation batch ended without an answer".into()).into())
            }
            Err(_) => Err(DbUnavailable::Deadline(deadline).into()),
        }
    }

    /// How many batches have been sent (for tests and the README's figures).
    pub fn batches_sent(&self) -> u64 {
        self.inner.batches_sent.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A task sending batches. Should it end early (its runtime shutting down),
/// its place is given back on drop, so that the queue never stalls.
struct Sender {
    inner: Arc<Inner>,
    counted: bool,
}

impl Sender {
    fn new(inner: Arc<Inner>) -> Sender {
        Sender {
            inner,
            counted: true,
        }
    }

    async fn run(mut self) {
        loop {
            let jobs: Vec<Job> = {
                let mut state = self.inner.lock();
                if state.waiting.is_empty() {
                    // Given back under the same lock that found the queue
                    // empty: a rotation queued after this starts a sender.
                    state.senders -= 1;
                    self.counted = false;
                    return;
                }
                let n = state.waiting.len().min(MOST_PER_BATCH);
                state.waiting.drain(..n).collect()
            };
            self.send(jobs).await;
        }
    }

    async fn send(&self, jobs: Vec<Job>) {
        let (args, waiting): (Vec<RotationArgs>, Vec<_>) =
            jobs.into_iter().map(|job| (job.args, job.answer)).unzip();
        let count = args.len();
        self.inner.batches_sent.fetch_add(1, Ordering::Relaxed);
        let rotated = run_blocking(&self.inner.db, move |conn| {
            Ok::<_, ApiError>(rotate_batch(conn, &args)?)
        })
        .await;
        let answers: Vec<Answer> = match rotated {
            Ok(rotated) => rotated.into_iter().map(Answer::Done).collect(),
            Err(err) => vec![answer_to_failure(err, count); count],
        };
        for (waiting, answer) in waiting.into_iter().zip(answers) {
            // The request may have given up; then nobody is listening.
            let _ = waiting.send(answer);
        }
    }
}

/// What the requests of a failed batch of `count` get (logged once here,
/// or by the conversion to [`ApiError`]).
fn answer_to_failure(err: ApiError, count: usize) -> Answer {
    if matches!(err, ApiError::Unavailable) {
        return Answer::Unavailable;
    }
    log::warn!("a batch of {count} rotation(s) failed; each goes the full way: {err}");
    Answer::Done(None)
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.counted {
            self.inner.lock().senders -= 1;
        }
    }
}
