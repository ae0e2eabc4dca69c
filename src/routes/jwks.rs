//! `GET /.well-known/jwks.json` (SPEC 7.1): the public keys that verify our
//! tokens, from this instance's key ring (no database round trip).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::ToSchema;

use crate::state::AppState;

// The set's schema, for the OpenAPI document only: the ring writes the JSON.

/// An RFC 7517 JWK Set.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct JwkSet {
    keys: Vec<Jwk>,
}

/// A published public key: Ed25519 (`OKP`, `crv`, `x`) or RSA (`n`, `e`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Jwk {
    #[schema(pattern = "^(OKP|RSA)$")]
    kty: String,
    /// The RFC 7638 thumbprint of the key, named by the tokens it signed.
    kid: String,
    #[schema(pattern = "^(EdDSA|RS256)$")]
    alg: String,
    #[schema(rename = "use", pattern = "^sig$")]
    use_: String,
    #[schema(required = false, pattern = "^Ed25519$")]
    crv: String,
    #[schema(required = false)]
    x: String,
    #[schema(required = false)]
    n: String,
    #[schema(required = false)]
    e: String,
}

/// The JWK Set (RFC 7517) of the published keys.
///
/// `{"keys": []}` in HS256 mode. Resource servers may cache it for five
/// minutes: a new key is published `jwt.key_publish_ahead_secs` (an hour by
/// default) before it signs.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    responses(
        (status = 200, description = "The published public keys", body = JwkSet,
            headers(("Cache-Control" = String, description = "public, max-age=300"))),
    )
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.issuer.keys().jwks())
}
