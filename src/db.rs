//! The way to PostgreSQL: the r2d2 pool with its deadlines, the embedded
//! migrations, and [`run_blocking`], the one door through which handlers
//! reach diesel.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DatabaseSettings;

pub type DbPool = Pool<Manager>;
pub type DbConn = PooledConnection<Manager>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The pool and the deadline of the requests that use it.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    deadline: Duration,
}

impl Db {
    pub fn new(pool: DbPool, settings: &DatabaseSettings) -> Db {
        Db {
            pool,
            deadline: Duration::from_millis(settings.request_deadline_ms),
        }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }
}

/// Bumped whenever a connection is found lost (or none could be had): every
/// pooled connection checked out after that is pinged once before use. In
/// steady state a checkout costs no round trip, where r2d2's own test would
/// send a `SELECT 1` every time.
static LOSSES: AtomicU64 = AtomicU64::new(0);

/// Notes that a connection to PostgreSQL was lost or could not be had, so
/// that the idle connections of the pool are checked before their next use.
pub fn note_connection_lost() {
    LOSSES.fetch_add(1, Ordering::Relaxed);
}

/// A pooled connection, and the count of [`LOSSES`] when it was last known
/// to be alive.
pub struct PooledPg {
    pg: PgConnection,
    known_alive_at: u64,
}

/// Opens connections with libpq's client timeouts and sets the server-side
/// deadlines on each: `statement_timeout` (a statement that runs too long
/// is cancelled), `lock_timeout` (a statement waiting on a lock held by
/// someone else gives up) and `idle_in_transaction_session_timeout`.
pub struct Manager {
    url: String,
    settings: String,
}

impl ManageConnection for Manager {
    type Connection = PooledPg;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PooledPg, Self::Error> {
        use diesel::Connection;
        let known_alive_at = LOSSES.load(Ordering::Relaxed);
        let mut pg = PgConnection::establish(&self.url).map_err(|err| {
            note_connection_lost();
            diesel::r2d2::Error::ConnectionError(err)
        })?;
        pg.batch_execute(&self.settings)
            .map_err(diesel::r2d2::Error::QueryError)?;
        Ok(PooledPg { pg, known_alive_at })
    }

    fn is_valid(&self, conn: &mut PooledPg) -> Result<(), Self::Error> {
        let losses = LOSSES.load(Ordering::Relaxed);
        if conn.known_alive_at == losses {
            return Ok(());
        }
        conn.pg
            .batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)?;
        conn.known_alive_at = losses;
        Ok(())
    }

    fn has_broken(&self, conn: &mut PooledPg) -> bool {
        std::thread::panicking() || R2D2Connection::is_broken(&mut conn.pg)
    }
}

/// The URL with libpq's client-side timeouts added where it names none:
/// `connect_timeout` (libpq's floor is 2 s), TCP keepalives, and
/// `tcp_user_timeout`, so that a connection to a host that has gone away
/// fails instead of hanging. (A frozen server whose kernel still answers TCP
/// defeats these; the request deadline of [`run_blocking`] covers that.)
pub fn with_client_timeouts(url: &str) -> String {
    const DEFAULTS: [(&str, &str); 6] = [
        ("connect_timeout", "2"),
        ("keepalives", "1"),
        ("keepalives_idle", "5"),
        ("keepalives_interval", "2"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "10000"),
    ];
    let is_uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let mut out = url.trim().to_owned();
    for (key, value) in DEFAULTS {
        if out.contains(&format!("{key}=")) {
            continue;
        }
        if is_uri {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&format!("{key}={value}"));
        } else {
            out.push_str(&format!(" {key}={value}"));
        }
    }
    out
}

/// Builds the pool and checks that the database answers: start-up refuses a
/// missing or unreachable database. Checkout waits at most
/// `database.connect_timeout_ms`, so that a request meets a database outage
/// with 503 in well under 2 seconds rather than r2d2's default 30.
pub fn build_pool(settings: &DatabaseSettings) -> Result<DbPool, diesel::r2d2::PoolError> {
    let manager = Manager {
        url: with_client_timeouts(&settings.url),
        settings: format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; \
             SET idle_in_transaction_session_timeout = 10000",
            settings.statement_timeout_ms, settings.lock_timeout_ms
        ),
    };
    Pool::builder()
        .max_size(settings.pool_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
        // Failures surface as 503s (logged once there) and as start-up's
        // one-line error; r2d2's own handler would log each attempt again.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .build(manager)
}

/// One connection outside the pool, for the one-shot subcommands and
/// migrations: libpq's client timeouts, no statement deadline (a migration
/// may rewrite a large table).
pub fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgConnection> {
    use diesel::Connection;
    PgConnection::establish(&with_client_timeouts(&settings.url))
        .map_err(|e| anyhow::anyhow!("cannot reach the database: {e}"))
}

/// Applies pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut PgConnection) -> anyhow::Result<usize> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    Ok(applied.len())
}

/// Makes the partitions of `refresh_tokens` ahead (see
/// [`crate::partitions`]) for the configured lifetimes, after the migrations:
/// `authgate migrate` and `serve` call it, as every sweeper pass does.
pub fn make_partitions_ahead(
    conn: &mut PgConnection,
    settings: &crate::config::Settings,
) -> anyhow::Result<u32> {
    let policy = settings.session_policy();
    let made = crate::partitions::make_ahead(
        conn,
        Utc::now(),
        policy.refresh_ttl.min(policy.max_lifetime),
    )
    .map_err(|e| anyhow::anyhow!("cannot make the refresh_tokens partitions: {e}"))?;
    if made > 0 {
        log::info!("made {made} refresh_tokens partition(s) ahead");
    }
    Ok(made)
}

/// Why blocking database work did not run: no connection could be had in
/// time, the deadline passed, or the blocking task died. Callers see 503
/// `unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum DbUnavailable {
    #[error("no database connection: {0}")]
    Checkout(#[from] diesel::r2d2::PoolError),
    #[error("the database did not answer within {0:?}")]
    Deadline(Duration),
    #[error("the blocking task failed: {0}")]
    Task(String),
}

/// Runs `f` on the blocking thread pool and flattens the two layers of
/// errors into the caller's error type (crates.io's `spawn_blocking`).
pub async fn spawn_blocking<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbUnavailable> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) => Err(DbUnavailable::Task(err.to_string()).into()),
    }
}

thread_local! {
    /// Set while a blocking thread runs work whose caller may give up on it.
    static ABANDONED: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    /// The wall-clock time after which that work must not commit.
    static COMMIT_BY: Cell<Option<DateTime<Utc>>> = const { Cell::new(None) };
}

/// How long before the request's deadline a single auto-committed statement
/// must run, so that its answer is back in time.
const COMMIT_MARGIN: Duration = Duration::from_millis(200);

/// The latest wall-clock time (the system's, which PostgreSQL's
/// `clock_timestamp()` shares) at which the work running on this thread may
/// still commit: a single auto-committed statement guards itself with
/// `clock_timestamp() < $commit_by`, so that one stuck in a frozen server
/// does nothing when it finally runs, long after its client got 503.
pub fn commit_by() -> DateTime<Utc> {
    COMMIT_BY
        .with(Cell::get)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether the caller of the work running on this thread has given up on it
/// (its deadline passed and it answered 503). Transactions check it before
/// they commit, so that work the client was told failed does not land late.
pub fn abandoned() -> bool {
    ABANDONED.with(|flag| {
        flag.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Acquire))
    })
}

/// Runs `f` with a pooled connection on the blocking thread pool: the one
/// door through which request handlers reach diesel. Checking a connection
/// out can itself block, so it happens inside the closure too.
///
/// The whole of it (checkout included) has `database.request_deadline_ms`:
/// past it the caller gets [`DbUnavailable::Deadline`] at once, even when the
/// thread is stuck on a socket that nothing answers (a frozen server). The
/// thread is left to finish on its own; the connection goes back to the
/// pool when its socket resolves, and a transaction it was running rolls
/// back instead of committing (see [`abandoned`]).
pub async fn run_blocking<T, E, F>(db: &Db, f: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbUnavailable> + Send + 'static,
{
    let pool = db.pool.clone();
    let flag = Arc::new(AtomicBool::new(false));
    let thread_flag = flag.clone();
    let commit_by = Utc::now() + db.deadline.saturating_sub(COMMIT_MARGIN);
    let work = spawn_blocking(move || {
        ABANDONED.with(|f| *f.borrow_mut() = Some(thread_flag));
        COMMIT_BY.with(|c| c.set(Some(commit_by)));
        let result = checkout(&pool).and_then(|mut conn| f(&mut conn.pg));
        ABANDONED.with(|f| *f.borrow_mut() = None);
        COMMIT_BY.with(|c| c.set(None));
        result
    });
    match tokio::time::timeout(db.deadline, work).await {
        Ok(result) => result,
        Err(_) => {
            flag.store(true, Ordering::Release);
            note_connection_lost();
            Err(DbUnavailable::Deadline(db.deadline).into())
        }
    }
}

/// [`run_blocking`] without a deadline, for work that is long by nature
/// (a sweeper pass of many batches, each bounded by `statement_timeout`).
pub async fn run_blocking_unbounded<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbUnavailable> + Send + 'static,
{
    let pool = pool.clone();
    spawn_blocking(move || checkout(&pool).and_then(|mut conn| f(&mut conn.pg))).await
}

fn checkout<E: From<DbUnavailable>>(pool: &DbPool) -> Result<DbConn, E> {
    pool.get().map_err(|err| {
        note_connection_lost();
        DbUnavailable::from(err).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_timeouts_are_added_to_urls_that_name_none() {
        assert_eq!(
            with_client_timeouts("postgres://u@h/db"),
            "postgres://u@h/db?connect_timeout=2&keepalives=1&keepalives_idle=5\
             &keepalives_interval=2&keepalives_count=3&tcp_user_timeout=10000"
        );
        let url = with_client_timeouts("postgres://u@h/db?sslmode=disable&connect_timeout=9");
        assert!(url.starts_with("postgres://u@h/db?sslmode=disable&connect_timeout=9&keepalives=1"));
        assert_eq!(url.matches("connect_timeout").count(), 1);
        assert!(with_client_timeouts("host=h dbname=db")
            .starts_with("host=h dbname=db connect_timeout=2 "));
    }
}
