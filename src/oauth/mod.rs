//! OAuth 2.0 over the sessions we already have (SPEC 7.2): the metadata
//! document, the refresh-token grant's errors, RFC 7009 revocation, RFC 7662
//! introspection and the clients allowed to ask for it. The HTTP side is
//! `routes/oauth.rs`; the rules of tokens and sessions stay in
//! [`crate::sessions`].

mod clients;
mod error;
mod form;
mod introspection;
mod metadata;

pub use clients::{AddClientError, ClientCredentials, ClientSecret, OAuthClient};
pub use error::{no_store, OAuthError, BASIC_CHALLENGE};
pub use form::Form;
pub use introspection::{ActiveToken, Candidate, Introspection};
pub use metadata::Metadata;
