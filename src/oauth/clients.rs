//! OAuth clients (SPEC 7.2): the `oauth_clients` table, created and removed
//! by `authgate clients …`, and HTTP Basic authentication against it for
//! introspection. A client secret is 32 random bytes, shown once at
//! creation; the table keeps only its SHA-256, checked in constant time.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::error::OAuthError;
use crate::schema::oauth_clients;
use crate::tokens::TokenHash;

/// Longest client name accepted (the table's CHECK agrees).
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = oauth_clients, check_for_backend(diesel::pg::Pg))]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A client secret in clear: exists only between its creation and the one
/// time it is printed. `Debug` does not show it.
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// Why a client could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddClientError {
    #[error("a client name must be 1 to 200 characters, without control characters")]
    BadName,
    #[error("no random bytes from the operating system: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

fn random_hex<const N: usize>() -> Result<String, AddClientError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(AddClientError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl OAuthClient {
    /// Registers a client under a trimmed name; returns it with its secret,
    /// which is not stored and cannot be shown again.
    pub fn add(
        conn: &mut PgConnection,
        name: &str,
    ) -> Result<(OAuthClient, ClientSecret), AddClientError> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(AddClientError::BadName);
        }
        let client_id = random_hex::<16>()?;
        let secret = ClientSecret(random_hex::<32>()?);
        let client = diesel::insert_into(oauth_clients::table)
            .values((
                oauth_clients::client_id.eq(&client_id),
                oauth_clients::name.eq(name),
                oauth_clients::secret_hash.eq(TokenHash::of(secret.expose())),
            ))
            .returning(OAuthClient::as_returning())
            .get_result(conn)?;
        Ok((client, secret))
    }

    /// Every client, oldest first.
    pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<OAuthClient>> {
        oauth_clients::table
            .order((oauth_clients::created_at, oauth_clients::client_id))
            .select(OAuthClient::as_select())
            .load(conn)
    }

    /// Removes a client; false when none has that id.
    pub fn remove(conn: &mut PgConnection, client_id: &str) -> QueryResult<bool> {
        diesel::delete(oauth_clients::table.find(client_id))
            .execute(conn)
            .map(|deleted| deleted > 0)
    }
}

/// The `client_id` and `client_secret` of an `Authorization: Basic` header
/// (RFC 6749 §2.3.1, RFC 7617).
pub struct ClientCredentials {
    client_id: String,
    secret: TokenHash,
}

impl ClientCredentials {
    /// Reads the header; anything but well-formed Basic credentials is
    /// `invalid_client`. Ours contain only hex digits, which form-encoding
    /// (RFC 6749 §2.3.1) leaves as they are, so they are compared as sent.
    pub fn from_header(value: Option<&[u8]>) -> Result<ClientCredentials, OAuthError> {
        let value = value.ok_or(OAuthError::InvalidClient(
            "client authentication with HTTP Basic is required",
        ))?;
        let malformed = || OAuthError::InvalidClient("the Authorization header is not HTTP Basic");
        let value = std::str::from_utf8(value).map_err(|_| malformed())?;
        let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(malformed());
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(malformed)?;
        let (client_id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
        Ok(ClientCredentials {
            client_id: client_id.to_owned(),
            secret: TokenHash::of(secret),
        })
    }

    /// Whether a registered client has these credentials. An unknown id and
    /// a wrong secret are one answer.
    pub fn authenticate(&self, conn: &mut PgConnection) -> QueryResult<bool> {
        let stored: Option<TokenHash> = oauth_clients::table
            .find(&self.client_id)
            .select(oauth_clients::secret_hash)
            .first(conn)
            .optional()?;
        Ok(stored.is_some_and(|hash| hash.matches(&self.secret)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> String {
        format!("Basic {}", STANDARD.encode(credentials))
    }

    #[test]
    fn basic_credentials_are_read() {
        let c = ClientCredentials::from_header(Some(basic("abc:s3cret").as_bytes())).unwrap();
        assert_eq!(c.client_id, "abc");
        assert!(c.secret.matches(&TokenHash::of("s3cret")));
        // The secret may itself contain a colon; the id may not.
        let c = ClientCredentials::from_header(Some(basic("abc:a:b").as_bytes())).unwrap();
        assert!(c.secret.matches(&TokenHash::of("a:b")));
    }

    #[test]
    fn anything_else_is_invalid_client() {
        let no_colon = basic("abc");
        for value in [
            None,
            Some("Bearer abc"),
            Some("Basic"),
            Some("Basic !!!"),
            Some(no_colon.as_str()),
        ] {
            let result = ClientCredentials::from_header(value.map(str::as_bytes));
            assert!(
                matches!(result, Err(OAuthError::InvalidClient(_))),
                "{value:?}"
            );
        }
        assert!(ClientCredentials::from_header(Some(b"Basic \xff")).is_err());
    }

    #[test]
    fn ids_and_secrets_are_random_hex_of_their_length() {
        let id = random_hex::<16>().unwrap();
        let secret = random_hex::<32>().unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(secret.len(), 64);
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(random_hex::<32>().unwrap(), secret);
    }

    #[test]
    fn a_secret_is_not_printed_by_debug() {
        let secret = ClientSecret("hunter2".into());
        assert_eq!(format!("{secret:?}"), "ClientSecret(<redacted>)");
    }
}
