//! The authorization server metadata (RFC 8414, SPEC 7.2), served at
//! `/.well-known/oauth-authorization-server`: what this server offers, with
//! absolute URLs under `server.public_url`. Built once at start-up.

use serde::Serialize;
use utoipa::ToSchema;

/// The document. Members RFC 8414 §2 requires are all here; optional ones
/// are here when they describe something we offer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Metadata {
    /// `jwt.issuer`, the `iss` of our tokens.
    pub issuer: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    /// Only the refresh-token grant: tokens are first obtained at
    /// `/auth/login` (no password grant: RFC 9700 forbids it).
    #[schema(value_type = Vec<String>)]
    pub grant_types_supported: [&'static str; 1],
    /// Required by RFC 8414 even without an authorization endpoint; we
    /// have none, so no response type is supported: empty.
    #[schema(value_type = Vec<String>)]
    pub response_types_supported: [&'static str; 0],
    /// Public clients: the refresh token is the credential.
    #[schema(value_type = Vec<String>)]
    pub token_endpoint_auth_methods_supported: [&'static str; 1],
    #[schema(value_type = Vec<String>)]
    pub revocation_endpoint_auth_methods_supported: [&'static str; 1],
    #[schema(value_type = Vec<String>)]
    pub introspection_endpoint_auth_methods_supported: [&'static str; 1],
}

impl Metadata {
    /// The document for `issuer`, with endpoints under `public_url` (no
    /// trailing `/`).
    pub fn new(issuer: &str, public_url: &str) -> Metadata {
        let at = |path: &str| format!("{public_url}{path}");
        Metadata {
            issuer: issuer.to_owned(),
            token_endpoint: at("/oauth/token"),
            revocation_endpoint: at("/oauth/revoke"),
            introspection_endpoint: at("/oauth/introspect"),
            jwks_uri: at("/.well-known/jwks.json"),
            grant_types_supported: ["refresh_token"],
            response_types_supported: [],
            token_endpoint_auth_methods_supported: ["none"],
            revocation_endpoint_auth_methods_supported: ["none"],
            introspection_endpoint_auth_methods_supported: ["client_secret_basic"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_absolute_under_the_public_url() {
        let json = serde_json::to_value(Metadata::new("authgate", "https://a.example/x")).unwrap();
        assert_eq!(json["issuer"], "authgate");
        assert_eq!(json["token_endpoint"], "https://a.example/x/oauth/token");
        assert_eq!(
            json["jwks_uri"],
            "https://a.example/x/.well-known/jwks.json"
        );
        assert_eq!(json["response_types_supported"], serde_json::json!([]));
        assert!(json.get("authorization_endpoint").is_none());
    }
}
