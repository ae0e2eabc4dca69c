//! What every handler shares: the pool, the token issuer (with the session
//! policy), bcrypt, the revocation owner, the login limits, the clock and
//! the metrics. Built once by [`crate::startup::Application::build`].

use crate::clock::Clock;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::ratelimit::LoginLimiter;
use crate::sessions::{Revocations, TokenIssuer};
use crate::users::PasswordHasher;
use std::sync::Arc;

pub struct AppState {
    pub db: Db,
    pub issuer: TokenIssuer,
    pub hasher: PasswordHasher,
    pub revocations: Revocations,
    pub limiter: LoginLimiter,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
}
