//! Integration tests: the real HTTP application against a real PostgreSQL,
//! one binary (one link step), one fresh database per test.

#[macro_use]
mod helpers;

mod account_page;
mod admin;
mod bad_input;
mod browser;
mod crash;
mod deadlocks;
mod fast_rotation;
mod health;
mod hot_updates;
mod keys;
mod keys_rotation;
mod login;
mod logout;
mod me;
mod oauth;
mod openapi;
mod outage;
mod partitions;
mod partitions_conversion;
mod pool;
mod pooler;
mod properties;
mod ratelimit;
mod reissue;
mod revocation;
mod rotation_batches;
mod sessions;
mod signup;
mod startup;
mod sweeper;
mod sweeper_edges;
mod theft;
