//! The in-process schedule of `serve`: a pass at every tick of
//! `sweeper.schedule`, on the blocking pool.

use std::sync::Arc;

use super::{run_pass, Lifetimes, PassOutcome};
use crate::config::SweeperSettings;
use crate::db::{run_blocking_unbounded, DbPool};
use crate::metrics::Metrics;

/// Runs a pass on the blocking pool with a pooled connection, logs it, and
/// counts it. Never fails: a failed pass is logged and the next tick retries.
pub async fn scheduled_pass(
    pool: DbPool,
    settings: SweeperSettings,
    lifetimes: Lifetimes,
    metrics: Arc<Metrics>,
) {
    let lock_pool = pool.clone();
    let outcome: anyhow::Result<PassOutcome> = run_blocking_unbounded(&pool, move |conn| {
        let mut lock = lock_pool.get()?;
        run_pass(conn, &mut lock, &settings, lifetimes, false)
    })
    .await;
    match &outcome {
        Ok(PassOutcome::Done(report)) => log::info!("sweeper: {report}"),
        Ok(PassOutcome::Skipped) => log::info!("sweeper: skipped, another pass is running"),
        Err(err) => log::warn!("sweeper: pass failed, will retry at the next tick: {err:#}"),
    }
    metrics.record_pass(&outcome, chrono::Utc::now().timestamp());
}

/// Starts the in-process schedule (`sweeper.schedule`, seconds first). An
/// expression the scheduler cannot parse leaves the schedule off with an
/// error in the log: start-up refuses only what SPEC 2 names, and
/// `authgate sweep` from cron still works.
pub async fn start_schedule(
    pool: DbPool,
    settings: SweeperSettings,
    lifetimes: Lifetimes,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Option<tokio_cron_scheduler::JobScheduler>> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let schedule = settings.schedule.clone();
    let job = Job::new_async(schedule.as_str(), move |_, _| {
        Box::pin(scheduled_pass(
            pool.clone(),
            settings.clone(),
            lifetimes,
            metrics.clone(),
        ))
    });
    let job = match job {
        Ok(job) => job,
        Err(err) => {
            log::error!("sweeper.schedule {schedule:?} is not a valid cron expression ({err}); the in-process sweeper is off, run `authgate sweep` from cron");
            return Ok(None);
        }
    };
    let scheduler = JobScheduler::new().await?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    log::info!("sweeper scheduled: {schedule}");
    Ok(Some(scheduler))
}
