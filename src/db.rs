//! The way to PostgreSQL: the r2d2 pool with its deadlines, the embedded
//! migrations, and [`run_blocking`], the one door through which handlers
//! reach diesel.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::connection::CacheSize;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::QueryResult;
use diesel::RunQueryDsl;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::sync::Semaphore;

use crate::config::DatabaseSettings;

pub type DbPool = Pool<Manager>;
pub type DbConn = PooledConnection<Manager>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The pool, the deadline of the requests that use it, and the queue in
/// which they wait for a connection.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    deadline: Duration,
    /// One permit per pooled connection, taken before a blocking thread is:
    /// requests wait here, without a thread, first come first served.
    gate: Arc<Semaphore>,
}

impl Db {
    pub fn new(pool: DbPool, settings: &DatabaseSettings) -> Db {
        let gate = Arc::new(Semaphore::new(pool.max_size() as usize));
        Db {
            pool,
            deadline: Duration::from_millis(settings.request_deadline_ms),
            gate,
        }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// `database.request_deadline_ms`: how long a request waits for its
    /// database work, queue included.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The [`commit_by`] of work for a request that starts waiting now.
    pub fn commit_by_from_now(&self) -> DateTime<Utc> {
        Utc::now() + self.deadline.saturating_sub(COMMIT_MARGIN)
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

impl std::ops::Deref for PooledPg {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.pg
    }
}

impl std::ops::DerefMut for PooledPg {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.pg
    }
}

/// Opens the pool's connections: [`establish`]ed (libpq's client timeouts,
/// no named prepared statements), and nothing set on the session, since
/// behind a transaction pooler a session setting would stay on a server
/// connection that other clients get next. The server-side deadlines are
/// defaults of the role in the database ([`apply_deadline_defaults`]).
pub struct Manager {
    url: String,
}

impl ManageConnection for Manager {
    type Connection = PooledPg;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PooledPg, Self::Error> {
        let known_alive_at = LOSSES.load(Ordering::Relaxed);
        let pg = establish(&self.url).map_err(|err| {
            note_connection_lost();
            diesel::r2d2::Error::ConnectionError(err)
        })?;
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
        if std::thread::panicking() || R2D2Connection::is_broken(&mut conn.pg) {
            return true;
        }
        // Behind a transaction pooler, a notification meant for a session
        // that LISTENs through it (a feed without `database.listen_url`)
        // can reach whichever client that server connection serves; libpq
        // would keep it forever. Reading what has arrived costs no round
        // trip.
        conn.pg.notifications_iter().any(|n| n.is_err())
    }
}

/// Opens one connection: libpq's client timeouts added to the URL
/// ([`with_client_timeouts`]), and diesel's cache of named prepared
/// statements off. Behind a transaction pooler a named statement prepared
/// in one transaction is missing (or already exists) on the server
/// connection of the next; unnamed statements are parsed, bound and run in
/// one round trip (`PQsendQueryParams`), so this costs no round trip, only
/// the server's parse and plan of each statement.
pub fn establish(url: &str) -> diesel::ConnectionResult<PgConnection> {
    use diesel::Connection;
    let mut pg = PgConnection::establish(&with_client_timeouts(url))?;
    pg.set_prepared_statement_cache_size(CacheSize::Disabled);
    Ok(pg)
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
        url: settings.url.clone(),
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
/// migrations ([`establish`]: it may go through a transaction pooler too).
pub fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgConnection> {
    establish(&settings.url).map_err(|e| anyhow::anyhow!("cannot reach the database: {e}"))
}

/// Applies pending migrations, then the deadlines of `settings` as defaults
/// of the role in the database ([`apply_deadline_defaults`]); returns how
/// many migrations ran. It all runs in one transaction, which lifts the
/// deadlines for itself (`SET LOCAL`: a migration may rewrite a large
/// table), so every migration must run in a transaction (diesel's default).
pub fn run_migrations(
    conn: &mut PgConnection,
    settings: &DatabaseSettings,
) -> anyhow::Result<usize> {
    use diesel::Connection;
    let applied = conn.transaction(|conn| -> anyhow::Result<usize> {
        conn.batch_execute(
            "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; \
                 SET LOCAL idle_in_transaction_session_timeout = 0",
        )?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?
            .len();
        apply_deadline_defaults(conn, settings)?;
        Ok(applied)
    })?;
    sync_session_with_defaults(conn, settings)?;
    Ok(applied)
}

/// Longest a transaction may sit idle before PostgreSQL ends its session.
pub const IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 10_000;

/// The server-side deadlines of SPEC 6, as PostgreSQL settings.
fn deadline_settings(settings: &DatabaseSettings) -> [(&'static str, u64); 3] {
    [
        ("statement_timeout", settings.statement_timeout_ms),
        ("lock_timeout", settings.lock_timeout_ms),
        (
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_TIMEOUT_MS,
        ),
    ]
}

/// Makes the deadlines defaults of the current role in the current database
/// (`ALTER ROLE CURRENT_USER IN DATABASE … SET`), so that every session it
/// opens there starts with them: a direct connection, and each server
/// connection that PgBouncer opens, whoever its client is. A value already
/// stored is not written again (instances starting at once would otherwise
/// update the same catalog row); an advisory lock serialises the check.
/// Run in a transaction.
fn apply_deadline_defaults(
    conn: &mut PgConnection,
    settings: &DatabaseSettings,
) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(DEFAULTS_LOCK_KEY)
        .execute(conn)?;
    for (name, value) in deadline_settings(settings) {
        // Numbers and fixed names only: nothing here comes from a client.
        conn.batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (
                   SELECT 1 FROM pg_db_role_setting s
                     JOIN pg_database d ON d.oid = s.setdatabase
                    WHERE d.datname = current_database()
                      AND s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                      AND '{name}={value}' = ANY (s.setconfig)) THEN
                 EXECUTE format('ALTER ROLE %I IN DATABASE %I SET {name} = {value}',
                                current_user, current_database());
               END IF;
             END $$"
        ))?;
    }
    Ok(())
}

/// Gives this session the values that the role defaults give new sessions.
/// Behind a transaction pooler the server connection under it may have been
/// opened before the defaults were written; setting them to what every new
/// session starts with leaves it as a fresh one would be.
fn sync_session_with_defaults(
    conn: &mut PgConnection,
    settings: &DatabaseSettings,
) -> QueryResult<()> {
    let sets: Vec<String> = deadline_settings(settings)
        .iter()
        .map(|(name, value)| format!("set_config('{name}', '{value}', false)"))
        .collect();
    conn.batch_execute(&format!("SELECT {}", sets.join(", ")))
}

/// The advisory-lock key under which the role defaults are written
/// ("deadline" in ASCII).
const DEFAULTS_LOCK_KEY: i64 = 0x6465_6164_6c69_6e65;

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
/// Requests first queue for one of `database.pool_size` permits (a fair
/// semaphore), and only then take a blocking thread and a connection. Left
/// to r2d2 alone, every waiting request would hold a thread parked on the
/// pool, and whichever thread woke first would win: under load the wait
/// was unfair, and it made most of reissue's tail (README, "Performance").
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
    let commit_by = db.commit_by_from_now();
    let gate = db.gate.clone();
    let started = Arc::new(AtomicBool::new(false));
    let started_flag = started.clone();
    let work = async move {
        let permit = gate
            .acquire_owned()
            .await
            .map_err(|e| DbUnavailable::Task(e.to_string()))?;
        started_flag.store(true, Ordering::Release);
        spawn_blocking(move || {
            let _permit = permit;
            ABANDONED.with(|f| *f.borrow_mut() = Some(thread_flag));
            COMMIT_BY.with(|c| c.set(Some(commit_by)));
            let result = checkout(&pool).and_then(|mut conn| f(&mut conn.pg));
            ABANDONED.with(|f| *f.borrow_mut() = None);
            COMMIT_BY.with(|c| c.set(None));
            result
        })
        .await
    };
    match tokio::time::timeout(db.deadline, work).await {
        Ok(result) => result,
        Err(_) => {
            flag.store(true, Ordering::Release);
            // Work that never left the queue says nothing of the
            // connections: only a connection that did not answer in time
            // (or a checkout that did not come) has them checked.
            if started.load(Ordering::Acquire) {
                note_connection_lost();
            }
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

    /// Serialises the tests that read [`LOSSES`], a process-wide count.
    static LOSSES_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A `Db` whose pool never connects (nothing here reaches a database),
    /// with a deadline of 50 ms and `permits` permits.
    fn unconnected_db(permits: usize) -> Db {
        let manager = Manager {
            url: "postgres://nobody@127.0.0.1:1/none?connect_timeout=1".into(),
        };
        let pool = Pool::builder()
            .max_size(1)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_millis(20))
            .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Db {
            pool,
            deadline: Duration::from_millis(50),
            gate: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Runs `run_blocking` with no-op work on `db`, alone among these tests.
    fn run_alone(db: &Db) -> (Result<(), DbUnavailable>, u64, u64) {
        let _serial = LOSSES_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let before = LOSSES.load(Ordering::Relaxed);
        let result = runtime.block_on(run_blocking(db, |_conn| Ok::<_, DbUnavailable>(())));
        (result, before, LOSSES.load(Ordering::Relaxed))
    }

    #[test]
    fn a_deadline_that_passes_in_the_queue_has_no_connection_checked() {
        let db = unconnected_db(0); // nobody ever leaves the queue

        let (result, before, after) = run_alone(&db);

        assert!(matches!(result, Err(DbUnavailable::Deadline(_))));
        assert_eq!(after, before);
    }

    #[test]
    fn a_deadline_that_passes_at_the_database_has_the_connections_checked() {
        let db = unconnected_db(1);

        // The checkout of this pool fails, which counts as well; so does
        // the deadline, once the work has left the queue.
        let (result, before, after) = run_alone(&db);

        assert!(result.is_err());
        assert!(after > before);
    }

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
