//! Login's side of sessions: opening one, and evicting the oldest beyond
//! `sessions.max_per_user`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::issuer::{Subject, TokenIssuer, TokenPair};
use super::model::{NewSession, RevokeReason, Session};
use super::revocation::Revoker;
use crate::error::ApiError;
use crate::schema::users;
use crate::users::User;

/// Where a login came from, as recorded on its session.
pub struct Device {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Opens a session with its first refresh token, inside the caller's
/// transaction (see [`super::Revocations::transaction`]), and ends the
/// user's oldest live sessions beyond `sessions.max_per_user` (0 = no limit).
pub fn open_session(
    conn: &mut PgConnection,
    revoker: &mut Revoker,
    issuer: &TokenIssuer,
    user: &User,
    device: &Device,
    now: DateTime<Utc>,
) -> Result<TokenPair, ApiError> {
    let policy = *issuer.policy();
    // Serialises logins of one user, so that two at once cannot both
    // keep a session past the limit.
    let user: User = users::table
        .find(user.id)
        .select(User::as_select())
        .for_update()
        .first(conn)?;
    let session = NewSession {
        id: Uuid::new_v4(),
        user_id: user.id,
        created_at: now,
        last_used_at: now,
        expires_at: now + policy.max_lifetime,
        user_agent: device.user_agent.as_deref(),
        ip: device.ip.as_deref(),
    }
    .insert(conn)?;
    let subject = Subject::of(&user, &session);
    let minted = issuer.mint_refresh(&subject, now);
    minted.row(session.id).insert(conn)?;

    if policy.max_per_user > 0 {
        let live = Session::live_for_user(conn, user.id, now, policy.access_ttl)?;
        let excess = live.len().saturating_sub(policy.max_per_user as usize);
        let oldest: Vec<Uuid> = live
            .iter()
            .filter(|s| s.id != session.id)
            .take(excess)
            .map(|s| s.id)
            .collect();
        revoker.end(conn, &oldest, RevokeReason::Evicted)?;
    }
    Ok(issuer.pair(&subject, minted.token, minted.expires_at, now))
}
