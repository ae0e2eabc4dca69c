//! The `signing_keys` table: loading the keys, and making a new one under a
//! transaction-scoped advisory lock, so that however many instances (and
//! `authgate keys rotate`) run at once, one key is made per decision.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::Value;

use super::material::{self, NewKey};
use super::schedule::{KeySchedule, KeyTimes, Start};
use super::sealing::{Sealed, Sealer};
use crate::config::SigningAlgorithm;
use crate::schema::signing_keys;

/// The channel on which a new key is announced (payload: its kid), so that
/// every instance reloads the key set at once rather than at its next
/// periodic check.
pub const CHANNEL: &str = "authgate_signing_keys";

/// `pg_advisory_xact_lock` key of key making ("authkeys" in ASCII); the
/// sweeper's session lock is "authgate", and the login limits use the
/// two-integer form.
const LOCK: i64 = 0x6175_7468_6b65_7973;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub public_jwk: Value,
    pub private_key: Vec<u8>,
    pub nonce: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    pub signs_until: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = signing_keys)]
struct NewRow<'a> {
    kid: &'a str,
    alg: &'a str,
    public_jwk: &'a Value,
    private_key: &'a [u8],
    nonce: &'a [u8],
    created_at: DateTime<Utc>,
    signs_from: DateTime<Utc>,
}

impl StoredKey {
    /// The row a new key would be, sealed under `sealer` (the table's rows
    /// are made by [`KeyMaker`]; this serves rings built in memory).
    pub fn sealed_from(key: &NewKey, sealer: &Sealer, times: KeyTimes) -> StoredKey {
        let sealed = sealer.seal(&key.kid, key.alg, &key.private_der);
        StoredKey {
            kid: key.kid.clone(),
            alg: key.alg.name().to_owned(),
            public_jwk: key.public_jwk.clone(),
            private_key: sealed.ciphertext,
            nonce: sealed.nonce,
            created_at: times.created_at,
            signs_from: times.signs_from,
            signs_until: times.signs_until,
        }
    }

    pub fn times(&self) -> KeyTimes {
        KeyTimes {
            created_at: self.created_at,
            signs_from: self.signs_from,
            signs_until: self.signs_until,
        }
    }

    pub fn sealed(&self) -> Sealed {
        Sealed {
            ciphertext: self.private_key.clone(),
            nonce: self.nonce.clone(),
        }
    }

    /// Every key, of every algorithm, oldest first (for `keys list`).
    pub fn all(conn: &mut PgConnection) -> QueryResult<Vec<StoredKey>> {
        signing_keys::table
            .order((signing_keys::created_at, signing_keys::kid))
            .select(StoredKey::as_select())
            .load(conn)
    }

    /// The keys of one algorithm, oldest first.
    pub fn of_algorithm(
        conn: &mut PgConnection,
        alg: SigningAlgorithm,
    ) -> QueryResult<Vec<StoredKey>> {
        signing_keys::table
            .filter(signing_keys::alg.eq(alg.name()))
            .order((signing_keys::created_at, signing_keys::kid))
            .select(StoredKey::as_select())
            .load(conn)
    }
}

/// A key that was made: its kid and when it starts signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeKey {
    pub kid: String,
    pub signs_from: DateTime<Utc>,
}

/// What makes keys: the algorithm, the secret that seals them, and the
/// lifecycle settings.
pub struct KeyMaker<'a> {
    pub alg: SigningAlgorithm,
    pub sealer: &'a Sealer,
    pub schedule: &'a KeySchedule,
}

impl KeyMaker<'_> {
    /// The decision of [`KeySchedule::new_key_due`] over the stored keys.
    fn due(&self, keys: &[StoredKey], now: DateTime<Utc>, forced: bool) -> Option<Start> {
        let keys: Vec<(KeyTimes, bool)> = keys
            .iter()
            .map(|key| {
                let usable = self.sealer.open(&key.kid, self.alg, &key.sealed()).is_ok();
                (key.times(), usable)
            })
            .collect();
        self.schedule.new_key_due(&keys, now, forced)
    }

    /// Makes a new key when one is due at the time `now()` gives (or always,
    /// when `forced`: `authgate keys rotate`), and returns it; `None` when
    /// none was due.
    ///
    /// A key is generated before the lock is taken (an RSA key takes a
    /// while), and only when a first look says one is due; under the lock
    /// the decision is taken again, so that of several instances deciding at
    /// once only the first inserts and the others drop theirs. The insert
    /// sets the previous newest key's `signs_until` and notifies
    /// [`CHANNEL`], in the same transaction.
    pub fn make_if_due(
        &self,
        conn: &mut PgConnection,
        now: impl Fn() -> DateTime<Utc>,
        forced: bool,
    ) -> anyhow::Result<Option<MadeKey>> {
        let keys = StoredKey::of_algorithm(conn, self.alg)?;
        if self.due(&keys, now(), forced).is_none() {
            return Ok(None);
        }
        let key = material::generate(self.alg)?;
        conn.transaction(|conn| {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(LOCK)
                .execute(conn)?;
            let keys = StoredKey::of_algorithm(conn, self.alg)?;
            let now = now();
            let Some(start) = self.due(&keys, now, forced) else {
                return Ok(None);
            };
            let newest = keys
                .iter()
                .map(StoredKey::times)
                .min_by(KeyTimes::newest_first);
            let (created_at, signs_from) = self.schedule.new_key_times(newest.as_ref(), start, now);
            self.insert(conn, &key, created_at, signs_from)?;
            Ok(Some(MadeKey {
                kid: key.kid.clone(),
                signs_from,
            }))
        })
    }

    fn insert(
        &self,
        conn: &mut PgConnection,
        key: &NewKey,
        created_at: DateTime<Utc>,
        signs_from: DateTime<Utc>,
    ) -> QueryResult<()> {
        diesel::sql_query(
            "UPDATE signing_keys SET signs_until = greatest(signs_from, $2)
              WHERE alg = $1 AND signs_until IS NULL",
        )
        .bind::<Text, _>(self.alg.name())
        .bind::<diesel::sql_types::Timestamptz, _>(signs_from)
        .execute(conn)?;
        let sealed = self.sealer.seal(&key.kid, self.alg, &key.private_der);
        diesel::insert_into(signing_keys::table)
            .values(NewRow {
                kid: &key.kid,
                alg: self.alg.name(),
                public_jwk: &key.public_jwk,
                private_key: &sealed.ciphertext,
                nonce: &sealed.nonce,
                created_at,
                signs_from,
            })
            .execute(conn)?;
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(CHANNEL)
            .bind::<Text, _>(&key.kid)
            .execute(conn)?;
        Ok(())
    }
}
