//! authgate: a self-hosted JWT token server. See README.md for the tour.

pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod schema;
pub mod sessions;
pub mod startup;
pub mod sweeper;
pub mod tokens;
pub mod users;
