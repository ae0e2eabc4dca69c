//! The OAuth 2.0 side of the document (SPEC 7.2): the RFC 6749 §5.2 error
//! body of `/oauth/*` and the responses those operations share. Their codes
//! are the RFC's, not the closed set of SPEC 3.

use super::responses::string_header;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{ToResponse, ToSchema};

/// The error codes `/oauth/*` answers with (RFC 6749 §5.2, RFC 7009, RFC
/// 7662), but for `server_error`, which is never intended (500).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    TemporarilyUnavailable,
}

/// An error of `/oauth/*` (RFC 6749 §5.2).
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct OAuthErrorBody {
    error: OAuthErrorCode,
    error_description: String,
}

/// RFC 6749 §5.1's `Cache-Control: no-store` and `Pragma: no-cache`, on
/// every answer of `/oauth/token`, `/oauth/revoke` and `/oauth/introspect`.
fn no_store(mut response: ResponseBuilder) -> ResponseBuilder {
    response = response
        .header(
            "Cache-Control",
            string_header("^no-store$", "no-store (RFC 6749 5.1)"),
        )
        .header(
            "Pragma",
            string_header("^no-cache$", "no-cache (RFC 6749 5.1)"),
        );
    response
}

fn error(description: &str) -> ResponseBuilder {
    no_store(
        ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("OAuthErrorBody")))
                .build(),
        ),
    )
}

macro_rules! oauth_response {
    ($name:ident, $build:expr) => {
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), $build.build().into())
            }
        }
    };
}

oauth_response!(
    OAuthBadRequest,
    error(
        "`invalid_request`: a parameter missing, repeated or malformed, or a body \
         that is not application/x-www-form-urlencoded; at the token endpoint also \
         `invalid_grant` (a refresh token that is not ours, expired, spent or of an \
         ended session) and `unsupported_grant_type`"
    )
);

oauth_response!(
    OAuthInvalidClient,
    error("`invalid_client`: missing or wrong client credentials (HTTP Basic)").header(
        "WWW-Authenticate",
        string_header("^Basic( |$)", "the HTTP Basic challenge")
    )
);

oauth_response!(
    OAuthPayloadTooLarge,
    error("`invalid_request`: the body is over 64 KiB, chunked or not")
);

oauth_response!(
    OAuthUnavailable,
    error(
        "`temporarily_unavailable`: PostgreSQL did not answer within the request's \
         deadline; try again shortly"
    )
);

oauth_response!(
    OAuthTokens,
    no_store(
        ResponseBuilder::new()
            .description("A token pair of the session (RFC 6749 5.1; lifetimes in seconds)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("TokenPair")))
                    .build(),
            )
    )
);

oauth_response!(
    Revoked,
    no_store(ResponseBuilder::new().description(
        "Whatever the token (unknown, expired, malformed): a token of ours has \
         ended its session (RFC 7009 2.2). No body."
    ))
);

oauth_response!(
    Introspected,
    no_store(
        ResponseBuilder::new()
            .description(
                "`{\"active\": false}`, or `active: true` with the token's members \
                 (RFC 7662 2.2)"
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Introspection")))
                    .build(),
            )
    )
);

#[cfg(test)]
mod tests {
    use crate::oauth::OAuthError;

    /// Every code an `OAuthError` answers with, but `server_error` (500), is
    /// in the document's enum.
    #[test]
    fn the_documented_codes_are_those_of_oauth_error() {
        let schema =
            serde_json::to_value(<super::OAuthErrorCode as utoipa::PartialSchema>::schema())
                .unwrap();
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        for err in [
            OAuthError::InvalidRequest("x"),
            OAuthError::PayloadTooLarge,
            OAuthError::MethodNotAllowed("POST"),
            OAuthError::InvalidClient("x"),
            OAuthError::InvalidGrant("x".into()),
            OAuthError::UnsupportedGrantType,
            OAuthError::TemporarilyUnavailable,
        ] {
            assert!(documented.contains(&err.code()), "{}", err.code());
        }
        assert!(!documented.contains(&OAuthError::ServerError.code()));
    }
}
