//! Building the application: the same path for `authgate serve` and for the
//! tests, which bind port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Condition, Logger};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio_cron_scheduler::JobScheduler;

use crate::browser::{self, Browsers};
use crate::client_ip::TrustedProxies;
use crate::clock::Clock;
use crate::config::{Settings, DEVELOPMENT_SECRET};
use crate::db;
use crate::metrics::Metrics;
use crate::oauth::Metadata;
use crate::ratelimit::LoginLimits;
use crate::routes;
use crate::sessions::{spawn_listener, Revocations, RevokedSessions, RotationQueue, TokenIssuer};
use crate::signing_keys::{self, KeySchedule};
use crate::state::AppState;
use crate::sweeper;
use crate::tokens::TokenKeys;
use crate::users::PasswordHasher;

/// The log target of actix-web's request logger.
pub const ACCESS_LOG_TARGET: &str = "actix_web::middleware::logger";

pub struct Application {
    port: u16,
    server: Server,
    // Kept so that the schedule lives as long as the server.
    _scheduler: Option<JobScheduler>,
}

impl Application {
    /// Connects to the database (refusing to start when it cannot), runs
    /// pending migrations, loads the revoked-session set and, in the
    /// asymmetric modes, the signing keys (making the first), and binds.
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
        let jwt = settings.jwt.clone();
        let key_schedule = KeySchedule::of(&settings);
        let settings_for_partitions = settings.clone();
        let (pool, revoked, hasher, ring) = db::spawn_blocking(move || -> anyhow::Result<_> {
            let mut conn = db::connect(&database)?;
            let applied = db::run_migrations(&mut conn, &database)?;
            db::make_partitions_ahead(&mut conn, &settings_for_partitions)?;
            let pool = db::build_pool(&database).context("cannot reach the database")?;
            if applied > 0 {
                log::info!("applied {applied} migration(s)");
            }
            let revoked = RevokedSessions::new(policy.access_ttl, set_clock.clone());
            revoked.load_since(&mut conn, revoked.horizon(set_clock.now()))?;
            revoked.mark_synced();
            let hasher = PasswordHasher::new(bcrypt_cost).counting(bcrypt_runs);
            let ring = signing_keys::open_ring(&mut conn, &jwt, key_schedule, set_clock)?;
            Ok((pool, revoked, hasher, ring))
        })
        .await?;
        spawn_listener(settings.database.listen_url(), &revoked)?;
        let jwt = &settings.jwt;
        let keys = match ring {
            Some(ring) => {
                signing_keys::spawn_refresher(settings.database.listen_url(), &ring)?;
                TokenKeys::with_ring(ring, &jwt.issuer, &jwt.audience)
            }
            None => TokenKeys::new(&jwt.secret, &jwt.issuer, &jwt.audience),
        };
        if jwt.secret.expose() == DEVELOPMENT_SECRET.as_bytes() {
            let consequence = if jwt.algorithm().is_asymmetric() {
                "anyone with a copy of the database can decrypt the signing keys and mint tokens"
            } else {
                "anyone can mint tokens for this server"
            };
            log::warn!(
                "*** jwt.secret is the PUBLIC development default: {consequence}. \
                 Set AUTHGATE__JWT__SECRET (at least 32 random bytes) before it serves \
                 anyone; AUTHGATE_ENV=production refuses to start with it. ***"
            );
        }

        let db = db::Db::new(pool.clone(), &settings.database);
        let scheduler = sweeper::start_schedule(
            pool.clone(),
            settings.sweeper.clone(),
            sweeper::Lifetimes::of(&settings),
            metrics.clone(),
        )
        .await?;
        let listener = TcpListener::bind(&settings.server.bind)
            .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let public_url = settings.server.public_url(port);
        let state = web::Data::new(AppState {
            revocations: Revocations::new(db.clone(), revoked, clock.clone()),
            rotations: RotationQueue::new(db.clone()),
            db,
            issuer: TokenIssuer::with_keys(keys, &settings.jwt, policy),
            hasher,
            limits: LoginLimits::new(&settings.ratelimit),
            proxies: TrustedProxies::parse(&settings.server.trusted_proxies),
            clock,
            metrics,
            oauth_metadata: Metadata::new(&settings.jwt.issuer, &public_url),
            browsers: Browsers::new(&settings.browser, &public_url),
        });

        // One line per request costs more than /auth/me itself: the access
        // log is on only when its target is enabled, e.g.
        // RUST_LOG=info,actix_web::middleware::logger=info.
        let access_log = log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info);
        let cors = state.browsers.allows_other_origins();
        let mut server = HttpServer::new(move || {
            App::new()
                // Only for browser.allowed_origins: with none (the default:
                // this server's own pages need no CORS), no request pays for
                // the two middlewares (a quarter of /auth/me's throughput).
                .wrap(Condition::new(cors, state.browsers.cors()))
                .wrap(Condition::new(
                    cors,
                    from_fn(browser::cors_for_allowed_origins_only),
                ))
                .wrap(Condition::new(
                    access_log,
                    Logger::new("%a \"%r\" %s %b %Dms"),
                ))
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
