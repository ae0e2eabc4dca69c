//! Integration tests: the real HTTP application against a real PostgreSQL,
//! one binary (one link step), one fresh database per test.

mod helpers;

mod admin;
mod health;
mod login;
mod logout;
mod me;
mod reissue;
mod sessions;
mod signup;
mod theft;
