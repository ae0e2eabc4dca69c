//! Integration tests: the real HTTP application against a real PostgreSQL,
//! one binary (one link step), one fresh database per test.

mod helpers;

mod health;
mod login;
mod me;
mod reissue;
mod signup;
mod theft;
