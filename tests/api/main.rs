//! Integration tests: the real HTTP application against a real PostgreSQL,
//! one binary (one link step), one fresh database per test.

mod helpers;

mod health;
