//! A presented refresh token exchanged for a new pair (SPEC 4.3): the one
//! path behind both `POST /auth/reissue` and the refresh-token grant of
//! `POST /oauth/token` (SPEC 7.2), so that the two apply the same rules.
//! It verifies the token, weighs the access token sent beside it, tries the
//! one-statement rotation (in a batch), and falls back to the full
//! transaction.

use super::fast_rotation::MintedRotation;
use super::issuer::{TokenIssuer, TokenPair};
use super::revocation::Revocations;
use super::rotation::{access_evidence, reissue, AccessEvidence, ReissueOutcome};
use super::rotation_queue::RotationQueue;
use crate::clock::Clock;
use crate::db::Db;
use crate::error::ApiError;
use crate::tokens::{TokenHash, TokenKind};

/// What an exchange needs of the application state.
#[derive(Clone, Copy)]
pub struct Exchange<'a> {
    pub db: &'a Db,
    pub rotations: &'a RotationQueue,
    pub issuer: &'a TokenIssuer,
    pub revocations: &'a Revocations,
    pub clock: &'a Clock,
}

impl Exchange<'_> {
    /// Exchanges `refresh` for a new pair. `beside` is the `Authorization`
    /// header sent beside a refresh token given in a body (the access token
    /// of 4.3, whose evidence may renew or revoke the session); `None` when
    /// the refresh token came alone (as the bearer itself, or to the OAuth
    /// token endpoint). A refusal may have ended the session (reuse, a mixed
    /// pair); it is committed all the same.
    pub async fn refresh(
        self,
        refresh: &str,
        beside: Option<&[u8]>,
    ) -> Result<TokenPair, ApiError> {
        let keys = self.issuer.keys();
        let token = keys.verify(refresh, TokenKind::Refresh)?;
        let evidence = access_evidence(beside, refresh, &token.claims.sid, keys, self.clock.unix());
        let hash = TokenHash::of(refresh);
        let now = self.clock.now();
        if evidence != AccessEvidence::Mismatch && !token.claims.is_expired_at(now.timestamp()) {
            // The common case in one statement, batched with the others
            // waiting; None sends it down the full path.
            let rotation = MintedRotation::mint(
                self.issuer,
                &token,
                &hash,
                now,
                self.db.commit_by_from_now(),
            );
            if let Some(rotated) = self.rotations.rotate(rotation.args.clone()).await? {
                return Ok(rotation.into_pair(self.issuer, &token, &rotated));
            }
        }
        let (issuer, clock) = (self.issuer.clone(), self.clock.clone());
        let outcome = self
            .revocations
            .transaction(move |conn, revoker| {
                reissue(conn, revoker, &issuer, &token, &hash, evidence, &clock)
            })
            .await?;
        match outcome {
            ReissueOutcome::Issued(pair) => Ok(pair),
            ReissueOutcome::Refused(error) => Err(error),
        }
    }
}
