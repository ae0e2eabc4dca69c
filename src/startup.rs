//! Building the application: the same path for `authgate serve` and for the
//! tests, which bind port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::Logger;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio_cron_scheduler::JobScheduler;

use crate::client_ip::TrustedProxies;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db;
use crate::metrics::Metrics;
use crate::ratelimit::LoginLimits;
use crate::routes;
use crate::sessions::{spawn_listener, Revocations, RevokedSessions, TokenIssuer};
use crate::state::AppState;
use crate::sweeper;
use crate::users::PasswordHasher;

pub struct Application {
    port: u16,
    server: Server,
    // Kept so that the schedule lives as long as the server.
    _scheduler: Option<JobScheduler>,
}

impl Application {
    /// Connects to the database (refusing to start when it cannot), runs
    /// pending migrations, loads the revoked-session set, and binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Application::build_with_clock(settings, Clock::system()).await
    }

    /// [`Application::build`] with the clock that every rule is judged by
    /// (tests pass one that they can move).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Application> {
        let policy = settings.session_policy();
        let database = settings.database.clone();
        let bcrypt_cost = settings.password.bcrypt_cost;
        let set_clock = clock.clone();
        let metrics = Arc::new(Metrics::new());
        let bcrypt_runs = metrics.bcrypt_runs.clone();
        let (pool, revoked, hasher) = db::spawn_blocking(move || -> anyhow::Result<_> {
            let applied = db::run_migrations(&mut db::connect(&database)?)?;
            let pool = db::build_pool(&database).context("cannot reach the database")?;
            let mut conn = pool.get().context("cannot reach the database")?;
            if applied > 0 {
                log::info!("applied {applied} migration(s)");
            }
            let revoked = RevokedSessions::new(policy.access_ttl, set_clock.clone());
            revoked.load_since(&mut conn, revoked.horizon(set_clock.now()))?;
            let hasher = PasswordHasher::new(bcrypt_cost).counting(bcrypt_runs);
            Ok((pool, revoked, hasher))
        })
        .await?;
        spawn_listener(settings.database.url.clone(), &revoked)?;

        let db = db::Db::new(pool.clone(), &settings.database);
        let scheduler =
            sweeper::start_schedule(pool.clone(), settings.sweeper.clone(), metrics.clone())
                .await?;
        let state = web::Data::new(AppState {
            revocations: Revocations::new(db.clone(), revoked, clock.clone()),
            db,
            issuer: TokenIssuer::new(&settings.jwt, policy),
            hasher,
            limits: LoginLimits::new(&settings.ratelimit),
            proxies: TrustedProxies::parse(&settings.server.trusted_proxies),
            clock,
            metrics,
        });

        let listener = TcpListener::bind(&settings.server.bind)
            .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(crate::extract::MAX_BODY_BYTES))
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
