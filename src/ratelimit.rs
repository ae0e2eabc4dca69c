//! Login brute-force limits (SPEC 3): failed logins counted per email and per
//! client IP over `ratelimit.window_secs`, in PostgreSQL (`login_failures`),
//! so that every instance sharing the database counts against the same
//! limits.
//!
//! A login *reserves* its slot before its password is checked: one call of
//! `authgate_reserve_login` (see its migration) locks the login's keys,
//! trims their rows that have left the window, and either answers how long
//! to wait or inserts one row per key. A wrong password leaves the rows: they
//! are the counted failures. A right one deletes them ([`Reservation::release`])
//! in the transaction that opens its session. So of any number of
//! simultaneous logins for one key, at most the limit reach bcrypt. A crash,
//! a dropped request or a failed session between the two leaves the rows:
//! the login counts as a failure (the limits fail closed).
//!
//! Keys are `email:` + the canonical email and `ip:` + the client address
//! (IPv6 per /64), stored as their SHA-256 only. A limit of 0 is neither
//! checked nor recorded; with both at 0 a login does no database work here.

use std::net::IpAddr;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Double, Integer, Timestamptz};
use ipnet::Ipv6Net;
use sha2::{Digest, Sha256};

use crate::config::RateLimitSettings;
use crate::error::ApiError;

/// Rows deleted per statement by [`purge_expired`].
pub const PURGE_BATCH: i64 = 5000;

/// The configured limits; cheap to copy into blocking work.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    per_email: u32,
    per_ip: u32,
    window: Duration,
}

/// The rows one login holds until its verdict: one per limited key, all
/// stamped with the same instant.
#[derive(Debug)]
pub struct Reservation {
    key_hashes: Vec<Vec<u8>>,
    at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Reserved {
    #[diesel(sql_type = Integer)]
    retry_after: i32,
}

impl LoginLimits {
    pub fn new(settings: &RateLimitSettings) -> LoginLimits {
        LoginLimits {
            per_email: settings.login_failures_per_email,
            per_ip: settings.login_failures_per_ip,
            window: settings.window(),
        }
    }

    /// The keys a login counts against, with their limits; a key whose limit
    /// is 0 is left out, and so is the IP when the peer is unknown.
    pub fn keys(&self, canonical_email: &str, ip: Option<IpAddr>) -> Vec<(String, u32)> {
        let email = (self.per_email > 0).then(|| (email_key(canonical_email), self.per_email));
        let ip = ip
            .filter(|_| self.per_ip > 0)
            .map(|ip| (ip_key(ip), self.per_ip));
        email.into_iter().chain(ip).collect()
    }

    /// Reserves this login's slot under each of its keys, before the
    /// password is checked: 429 `rate_limited` (with the whole seconds until
    /// a slot frees) when a key is at its limit, even for the right
    /// password. One statement; none when both limits are 0.
    pub fn reserve(
        &self,
        conn: &mut PgConnection,
        canonical_email: &str,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Reservation, ApiError> {
        // PostgreSQL keeps microseconds: the release must name the very
        // instant that was stored.
        let at = now.trunc_subsecs(6);
        let keys = self.keys(canonical_email, ip);
        if keys.is_empty() {
            return Ok(Reservation {
                key_hashes: Vec::new(),
                at,
            });
        }
        let limits: Vec<i32> = keys
            .iter()
            .map(|(_, limit)| i32::try_from(*limit).unwrap_or(i32::MAX))
            .collect();
        let key_hashes: Vec<Vec<u8>> = keys.iter().map(|(key, _)| key_hash(key).to_vec()).collect();
        let window_secs = self.window.num_milliseconds() as f64 / 1000.0;
        let reserved: Reserved =
            diesel::sql_query("SELECT authgate_reserve_login($1, $2, $3, $4) AS retry_after")
                .bind::<Array<Bytea>, _>(&key_hashes)
                .bind::<Array<Integer>, _>(&limits)
                .bind::<Double, _>(window_secs)
                .bind::<Timestamptz, _>(at)
                .get_result(conn)?;
        if reserved.retry_after > 0 {
            return Err(ApiError::RateLimited {
                retry_after_secs: u64::from(reserved.retry_after.unsigned_abs()),
            });
        }
        Ok(Reservation { key_hashes, at })
    }
}

impl Reservation {
    /// Takes back the rows of a login that succeeded: successful logins are
    /// not counted. One statement (none when nothing was reserved), meant
    /// for the transaction that opens the session, so that the two commit
    /// together. Rows of one key at one instant are interchangeable, so one
    /// of them per key is deleted.
    pub fn release(&self, conn: &mut PgConnection) -> QueryResult<()> {
        if self.key_hashes.is_empty() {
            return Ok(());
        }
        diesel::sql_query(
            "DELETE FROM login_failures
              WHERE ctid = ANY (ARRAY(
                    SELECT DISTINCT ON (key_hash) ctid FROM login_failures
                     WHERE key_hash = ANY ($1) AND at = $2))",
        )
        .bind::<Array<Bytea>, _>(&self.key_hashes)
        .bind::<Timestamptz, _>(self.at)
        .execute(conn)?;
        Ok(())
    }
}

/// Deletes the rows that have left the window (`at <= now - window`), in
/// batches of [`PURGE_BATCH`]; returns how many. Reservations trim the keys
/// they touch; this is for keys never seen again, for the sweeper.
pub fn purge_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    window: Duration,
) -> QueryResult<usize> {
    let horizon = now - window;
    let mut purged = 0;
    loop {
        let deleted = diesel::sql_query(
            "DELETE FROM login_failures
              WHERE ctid = ANY (ARRAY(
                    SELECT ctid FROM login_failures WHERE at <= $1 LIMIT $2))",
        )
        .bind::<Timestamptz, _>(horizon)
        .bind::<BigInt, _>(PURGE_BATCH)
        .execute(conn)?;
        purged += deleted;
        if (deleted as i64) < PURGE_BATCH {
            return Ok(purged);
        }
    }
}

/// The per-email key: the canonical email, so that case and surrounding
/// spaces do not make new keys.
pub fn email_key(canonical_email: &str) -> String {
    format!("email:{canonical_email}")
}

/// The per-IP key: an IPv4 address (IPv4-mapped IPv6 included) as itself,
/// other IPv6 addresses as their /64, which one subscriber usually holds
/// whole.
pub fn ip_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let net = Ipv6Net::new(v6, 64).expect("64 is a valid prefix length");
            format!("ip:{}", net.trunc())
        }
    }
}

/// What `login_failures.key_hash` stores for a key.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_email: u32, per_ip: u32) -> LoginLimits {
        LoginLimits::new(&RateLimitSettings {
            login_failures_per_email: per_email,
            login_failures_per_ip: per_ip,
            window_secs: 60,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_addresses_are_counted_alone() {
        assert_eq!(ip_key(ip("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(ip_key(ip("::ffff:203.0.113.7")), "ip:203.0.113.7");
    }

    #[test]
    fn ipv6_addresses_are_counted_per_64() {
        assert_eq!(ip_key(ip("2001:db8:1:2::1")), "ip:2001:db8:1:2::/64");
        assert_eq!(
            ip_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            "ip:2001:db8:1:2::/64"
        );
        assert_ne!(ip_key(ip("2001:db8:1:3::1")), "ip:2001:db8:1:2::/64");
        assert_eq!(ip_key(ip("::1")), "ip:::/64");
    }

    #[test]
    fn a_limit_of_zero_leaves_its_key_out() {
        let a = Some(ip("192.0.2.1"));
        assert_eq!(
            limits(3, 7).keys("ann@x.io", a),
            vec![
                ("email:ann@x.io".to_owned(), 3),
                ("ip:192.0.2.1".to_owned(), 7)
            ]
        );
        assert_eq!(
            limits(0, 7).keys("ann@x.io", a),
            vec![("ip:192.0.2.1".to_owned(), 7)]
        );
        assert_eq!(
            limits(3, 0).keys("ann@x.io", a),
            vec![("email:ann@x.io".to_owned(), 3)]
        );
        assert!(limits(0, 0).keys("ann@x.io", a).is_empty());
        assert_eq!(limits(3, 7).keys("ann@x.io", None).len(), 1);
    }

    #[test]
    fn keys_are_stored_as_their_sha256() {
        let hash = key_hash("email:ann@x.io");
        assert_eq!(hash.len(), 32);
        assert_ne!(hash, key_hash("email:bob@x.io"));
        assert_eq!(hash, key_hash("email:ann@x.io"));
    }
}
