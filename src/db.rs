//! The way to PostgreSQL: the r2d2 pool, the embedded migrations, and
//! [`run_blocking`], the one door through which handlers reach diesel.

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DatabaseSettings;

pub type DbPool = Pool<ConnectionManager<PgConnection>>;
pub type DbConn = PooledConnection<ConnectionManager<PgConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Builds the pool and checks that the database answers: start-up refuses a
/// missing or unreachable database. Checkout waits at most
/// `database.connect_timeout_ms`, so that a request meets a database outage
/// with 503 in well under 2 seconds rather than r2d2's default 30.
pub fn build_pool(settings: &DatabaseSettings) -> Result<DbPool, diesel::r2d2::PoolError> {
    let manager = ConnectionManager::<PgConnection>::new(settings.url.clone());
    Pool::builder()
        .max_size(settings.pool_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
        // Failures surface as 503s (logged once there) and as start-up's
        // one-line error; r2d2's own handler would log each attempt again.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .build(manager)
}

/// One connection outside the pool, for the one-shot subcommands.
pub fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgConnection> {
    use diesel::Connection;
    PgConnection::establish(&settings.url)
        .map_err(|e| anyhow::anyhow!("cannot reach the database: {e}"))
}

/// Applies pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut PgConnection) -> anyhow::Result<usize> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    Ok(applied.len())
}

/// Why blocking database work did not run: no connection could be had in
/// time, or the blocking task died. Callers see 503 `unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum DbUnavailable {
    #[error("no database connection: {0}")]
    Checkout(#[from] diesel::r2d2::PoolError),
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

/// Runs `f` with a pooled connection on the blocking thread pool: the one
/// door through which request handlers, start-up and the sweeper reach
/// diesel. Checking a connection out can itself block, so it happens inside
/// the closure too.
pub async fn run_blocking<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbUnavailable> + Send + 'static,
{
    let pool = pool.clone();
    spawn_blocking(move || {
        let mut conn = pool.get().map_err(DbUnavailable::from)?;
        f(&mut conn)
    })
    .await
}
