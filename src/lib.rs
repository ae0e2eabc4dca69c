//! authgate: a self-hosted JWT token server. See README.md for the tour.

pub mod browser;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod partitions;
pub mod ratelimit;
pub mod routes;
pub mod schema;
pub mod sessions;
pub mod signing_keys;
pub mod startup;
pub mod state;
pub mod sweeper;
pub mod tokens;
pub mod users;
