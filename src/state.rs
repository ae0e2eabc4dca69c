//! What every handler shares: the pool, the token issuer (with the session
//! policy), bcrypt, the revocation owner, the login limits, the trusted
//! proxies, the clock, the metrics, the OAuth metadata and the browser policy. Built once by [`crate::startup::Application::build`].

use crate::browser::Browsers;
use crate::client_ip::TrustedProxies;
use crate::clock::Clock;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::oauth::Metadata;
use crate::ratelimit::LoginLimits;
use crate::sessions::{Exchange, Revocations, RotationQueue, TokenIssuer};
use crate::users::PasswordHasher;
use std::sync::Arc;

pub struct AppState {
    pub db: Db,
    /// Reissues' one-statement rotations, sent in batches.
    pub rotations: RotationQueue,
    pub issuer: TokenIssuer,
    pub hasher: PasswordHasher,
    pub revocations: Revocations,
    pub limits: LoginLimits,
    pub proxies: TrustedProxies,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// The RFC 8414 document, with the URLs of `server.public_url`.
    pub oauth_metadata: Metadata,
    /// Cookie mode and the origins it trusts (SPEC 8).
    pub browsers: Browsers,
}

impl AppState {
    /// Refresh-token exchanges (SPEC 4.3) over this state.
    pub fn exchange(&self) -> Exchange<'_> {
        Exchange {
            db: &self.db,
            rotations: &self.rotations,
            issuer: &self.issuer,
            revocations: &self.revocations,
            clock: &self.clock,
        }
    }
}
