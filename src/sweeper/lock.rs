//! The one-pass-at-a-time guarantee: a transaction-scoped advisory lock,
//! held on a connection of its own for as long as a pass runs.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

/// The advisory-lock key of the sweeper ("authgate" in ASCII).
pub const LOCK_KEY: i64 = 0x6175_7468_6761_7465;

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

/// How often the transaction that holds the pass lock shows it is alive.
const LOCK_HEARTBEAT: Duration = Duration::from_secs(1);
/// How long that transaction may go without a heartbeat before PostgreSQL
/// ends it (and the lock with it): a holder frozen or cut off does not block
/// passes for longer than this.
pub const LOCK_HOLDER_IDLE_MS: u64 = 5_000;

/// Runs `work` while holding the sweeper's lock: `pg_try_advisory_xact_lock`
/// in a transaction of `lock` that stays open, pinged every
/// [`LOCK_HEARTBEAT`] from a thread of its own, until `work` returns.
/// `None`: another pass holds it, and `work` did not run.
///
/// Being transaction-scoped, the lock never outlives its transaction, so it
/// holds through a transaction pooler (which keeps the transaction on one
/// server connection) and is never left behind on a connection that another
/// client gets next. A holder that crashes loses its connection and the
/// lock at once; one that freezes (or whose pings stop arriving) is ended
/// by `idle_in_transaction_session_timeout` after [`LOCK_HOLDER_IDLE_MS`].
pub fn while_holding_pass_lock<T>(
    lock: &mut PgConnection,
    work: impl FnOnce() -> T,
) -> anyhow::Result<Option<T>> {
    let mut output = None;
    let held = lock.transaction(|lock| -> QueryResult<()> {
        diesel::sql_query(format!(
            "SET LOCAL idle_in_transaction_session_timeout = {LOCK_HOLDER_IDLE_MS}"
        ))
        .execute(lock)?;
        let taken = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS flag")
            .bind::<BigInt, _>(LOCK_KEY)
            .get_result::<Flag>(lock)?
            .flag;
        if !taken {
            return Ok(());
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let pinged = std::thread::scope(|scope| {
            let heartbeat = scope.spawn(move || keep_alive(lock, &stopped));
            output = Some(work());
            drop(stop);
            heartbeat.join()
        });
        match pinged {
            Ok(result) => result,
            Err(_) => Err(diesel::result::Error::RollbackTransaction),
        }
    });
    match (held, output) {
        (Ok(()), output) => Ok(output),
        // The work ran; only the lock's transaction failed (it was ended,
        // or its connection lost), so the guarantee may have lapsed before
        // the end of the pass.
        (Err(err), Some(output)) => {
            log::warn!("sweeper: the pass lock was lost during the pass: {err}");
            Ok(Some(output))
        }
        (Err(err), None) => Err(err.into()),
    }
}

/// Pings the lock's transaction every [`LOCK_HEARTBEAT`] until told to stop.
fn keep_alive(lock: &mut PgConnection, stopped: &std::sync::mpsc::Receiver<()>) -> QueryResult<()> {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(LOCK_HEARTBEAT) {
        diesel::sql_query("SELECT 1").execute(lock)?;
    }
    Ok(())
}
