//! The key ring: this instance's cached copy of the usable signing keys of
//! the configured algorithm, from which every token is signed and verified
//! without a database round trip. The refresher replaces it when keys
//! change; the time decisions (which key signs, which are published) are
//! taken on each use by the application's clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};

use super::material::key_pair;
use super::schedule::{signing_key, KeySchedule, KeyTimes};
use super::sealing::Sealer;
use super::store::StoredKey;
use crate::clock::Clock;
use crate::config::SigningAlgorithm;

/// One usable key: decrypted, checked against its kid and public JWK.
pub struct RingKey {
    pub kid: String,
    pub times: KeyTimes,
    pub public_jwk: Value,
    /// The header of the tokens it signs: `alg` and `kid`.
    pub header: Header,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The stored ciphertext, to recognise an unchanged row on reload.
    sealed: Vec<u8>,
}

impl std::fmt::Debug for RingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingKey")
            .field("kid", &self.kid)
            .field("times", &self.times)
            .finish_non_exhaustive()
    }
}

pub struct KeyRing {
    alg: SigningAlgorithm,
    sealer: Sealer,
    schedule: KeySchedule,
    clock: Clock,
    keys: RwLock<Arc<Vec<Arc<RingKey>>>>,
    /// Set when a token named a kid the ring does not have: the refresher
    /// then reloads (at most once a second), in case the key is new.
    stale: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read signing_keys: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no {0} signing key in signing_keys can be decrypted with this jwt.secret")]
    NoUsableKey(SigningAlgorithm),
}

impl KeyRing {
    /// Loads the usable keys of the algorithm. Refuses when there is none
    /// (start-up makes one first; see [`super::KeyMaker`]).
    pub fn load(
        conn: &mut PgConnection,
        alg: SigningAlgorithm,
        sealer: Sealer,
        schedule: KeySchedule,
        clock: Clock,
    ) -> Result<Arc<KeyRing>, LoadError> {
        let rows = StoredKey::of_algorithm(conn, alg)?;
        KeyRing::from_rows(alg, sealer, schedule, clock, rows)
    }

    /// A ring of the given rows (of the algorithm), as [`KeyRing::load`]
    /// would make from the table.
    pub fn from_rows(
        alg: SigningAlgorithm,
        sealer: Sealer,
        schedule: KeySchedule,
        clock: Clock,
        rows: Vec<StoredKey>,
    ) -> Result<Arc<KeyRing>, LoadError> {
        let ring = KeyRing {
            alg,
            sealer,
            schedule,
            clock,
            keys: RwLock::new(Arc::new(Vec::new())),
            stale: AtomicBool::new(false),
        };
        ring.install(rows)?;
        Ok(Arc::new(ring))
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.alg
    }

    pub fn schedule(&self) -> &KeySchedule {
        &self.schedule
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn snapshot(&self) -> Arc<Vec<Arc<RingKey>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the keys again. Rows that cannot be decrypted or do not match
    /// their kid are logged and left out; unchanged rows keep their parsed
    /// keys. A load that finds no usable key keeps the previous set (a
    /// signer must always have a key) and says so.
    pub fn reload(&self, conn: &mut PgConnection) -> Result<usize, LoadError> {
        let rows = StoredKey::of_algorithm(conn, self.alg)?;
        self.install(rows)
    }

    fn install(&self, rows: Vec<StoredKey>) -> Result<usize, LoadError> {
        let previous: HashMap<String, Arc<RingKey>> = self
            .snapshot()
            .iter()
            .map(|key| (key.kid.clone(), key.clone()))
            .collect();
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            match previous.get(&row.kid) {
                Some(known) if known.sealed == row.private_key => {
                    let mut times = known.times;
                    times.signs_until = row.signs_until;
                    if times == known.times {
                        keys.push(known.clone());
                    } else {
                        keys.push(Arc::new(RingKey {
                            times,
                            kid: known.kid.clone(),
                            public_jwk: known.public_jwk.clone(),
                            header: known.header.clone(),
                            encoding: known.encoding.clone(),
                            decoding: known.decoding.clone(),
                            sealed: known.sealed.clone(),
                        }));
                    }
                }
                _ => match self.open(&row) {
                    Ok(key) => keys.push(Arc::new(key)),
                    Err(err) => log::warn!("signing key {} left out: {err}", row.kid),
                },
            }
        }
        if keys.is_empty() {
            return Err(LoadError::NoUsableKey(self.alg));
        }
        keys.sort_by(|a, b| KeyTimes::newest_first(&a.times, &b.times));
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    fn open(&self, row: &StoredKey) -> anyhow::Result<RingKey> {
        let der = self.sealer.open(&row.kid, self.alg, &row.sealed())?;
        let pair = key_pair(self.alg, &row.kid, &row.public_jwk, &der)?;
        let mut header = Header::new(match self.alg {
            SigningAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            _ => jsonwebtoken::Algorithm::EdDSA,
        });
        header.kid = Some(row.kid.clone());
        Ok(RingKey {
            kid: row.kid.clone(),
            times: row.times(),
            public_jwk: row.public_jwk.clone(),
            header,
            encoding: pair.encoding,
            decoding: pair.decoding,
            sealed: row.private_key.clone(),
        })
    }

    /// The key that signs now.
    pub fn signing_key(&self) -> Arc<RingKey> {
        let keys = self.snapshot();
        signing_key(keys.iter().map(|k| (k.times, k.clone())), self.now())
            .expect("a key ring is never empty: load and reload refuse that")
    }

    /// The keys that may have signed a token at `signed_at`, the one that
    /// signed then first: for handing out a stored token again with the very
    /// key (kid) that first signed it.
    pub fn keys_for(&self, signed_at: DateTime<Utc>) -> Vec<Arc<RingKey>> {
        let mut keys: Vec<Arc<RingKey>> = self.snapshot().iter().cloned().collect();
        if let Some(then) = signing_key(keys.iter().map(|k| (k.times, k.kid.clone())), signed_at) {
            keys.sort_by_key(|k| k.kid != then);
        }
        keys
    }

    /// The published key with this kid, if any. An unknown kid marks the
    /// ring for a reload, in case it names a key made a moment ago.
    pub fn published(&self, kid: &str) -> Option<Arc<RingKey>> {
        let now = self.now();
        let found = self
            .snapshot()
            .iter()
            .find(|k| k.kid == kid)
            .filter(|k| self.schedule.is_published(&k.times, now))
            .cloned();
        if found.is_none() {
            self.stale.store(true, Ordering::Relaxed);
        }
        found
    }

    /// Takes the mark left by [`KeyRing::published`].
    pub fn take_stale(&self) -> bool {
        self.stale.swap(false, Ordering::Relaxed)
    }

    /// The RFC 7517 JWK Set of the published keys, newest first.
    pub fn jwks(&self) -> Value {
        let now = self.now();
        let snapshot = self.snapshot();
        let keys: Vec<&Value> = snapshot
            .iter()
            .filter(|k| self.schedule.is_published(&k.times, now))
            .map(|k| &k.public_jwk)
            .collect();
        json!({ "keys": keys })
    }
}
