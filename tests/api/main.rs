//! Integration tests: the real HTTP application against a real PostgreSQL,
//! one binary (one link step), one fresh database per test.

mod helpers;

mod admin;
mod bad_input;
mod crash;
mod deadlocks;
mod fast_rotation;
mod health;
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
mod properties;
mod ratelimit;
mod reissue;
mod revocation;
mod sessions;
mod signup;
mod startup;
mod sweeper;
mod sweeper_edges;
mod theft;
