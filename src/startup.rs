//! Building the application: the same path for `authgate serve` and for the
//! tests, which bind port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::Logger;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use chrono::Utc;

use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::metrics::GaugeCache;
use crate::ratelimit::LoginLimiter;
use crate::routes;
use crate::sessions::{spawn_listener, RevokedSessions, TokenIssuer};
use crate::sweeper::{self, SweeperStats};
use crate::users::PasswordHasher;
use tokio_cron_scheduler::JobScheduler;

/// What every handler shares.
pub struct AppState {
    pub pool: DbPool,
    pub issuer: TokenIssuer,
    pub hasher: PasswordHasher,
    pub revoked: Arc<RevokedSessions>,
    pub limiter: LoginLimiter,
    pub reuse_grace: chrono::Duration,
    pub max_lifetime: chrono::Duration,
    pub max_per_user: u32,
    pub sweeper: Arc<SweeperStats>,
    pub gauges: GaugeCache,
}

pub struct Application {
    port: u16,
    server: Server,
    // Kept so that the schedule lives as long as the server.
    _scheduler: Option<JobScheduler>,
}

fn seconds(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 4_000))
}

impl Application {
    /// Connects to the database (refusing to start when it cannot), runs
    /// pending migrations, loads the revoked-session set, and binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let database = settings.database.clone();
        let access_ttl = settings.jwt.access_ttl_secs;
        let bcrypt_cost = settings.password.bcrypt_cost;
        let (pool, revoked, hasher) = web::block(move || -> anyhow::Result<_> {
            let pool = db::build_pool(&database).context("cannot reach the database")?;
            let mut conn = pool.get().context("cannot reach the database")?;
            let applied = db::run_migrations(&mut conn)?;
            if applied > 0 {
                log::info!("applied {applied} migration(s)");
            }
            let revoked = RevokedSessions::new(access_ttl);
            revoked.load_since(&mut conn, revoked.horizon(Utc::now()))?;
            Ok((pool, revoked, PasswordHasher::new(bcrypt_cost)))
        })
        .await??;
        spawn_listener(settings.database.url.clone(), &revoked)?;

        let sweeper = Arc::new(SweeperStats::default());
        let scheduler =
            sweeper::start_schedule(pool.clone(), settings.sweeper.clone(), sweeper.clone())
                .await?;
        let state = web::Data::new(AppState {
            pool,
            issuer: TokenIssuer::new(&settings.jwt),
            hasher,
            revoked,
            limiter: LoginLimiter::new(&settings.ratelimit),
            reuse_grace: seconds(settings.sessions.reuse_grace_secs),
            max_lifetime: seconds(settings.sessions.max_lifetime_secs),
            max_per_user: settings.sessions.max_per_user,
            sweeper,
            gauges: GaugeCache::default(),
        });

        let listener = TcpListener::bind(&settings.server.bind)
            .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(routes::MAX_BODY_BYTES))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        log::info!(
            "listening on {}",
            settings.server.bind.replace(":0", &format!(":{port}"))
        );
        Ok(Application {
            port,
            server: server.run(),
            _scheduler: scheduler,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM (graceful: in-flight requests finish).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
