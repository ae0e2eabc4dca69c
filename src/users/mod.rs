//! Accounts: the email and password rules, bcrypt, and the `users` queries.

mod credentials;
mod model;
mod password;

pub use credentials::{canonical_email, normalize_email, validate_password, Credentials};
pub use model::{NewUser, User};
pub use password::PasswordHasher;
