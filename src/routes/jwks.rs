//! `GET /.well-known/jwks.json` (SPEC 7.1): the public keys that verify our
//! tokens, from this instance's key ring (no database round trip).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::state::AppState;

/// The RFC 7517 JWK Set of the published keys; `{"keys": []}` in HS256
/// mode. Resource servers may cache it for five minutes: a new key is
/// published `jwt.key_publish_ahead_secs` (an hour by default) before it
/// signs.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.issuer.keys().jwks())
}
