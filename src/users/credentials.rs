//! What counts as a valid email and password (SPEC 3). Pure functions.

use serde::Deserialize;

use crate::error::ApiError;

/// The body of signup and login.
#[derive(Deserialize)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Trims the email and checks it: exactly one `@` with something on both
/// sides, no whitespace or control characters, at most 254 bytes. Returns the
/// trimmed email as typed; comparisons are case-insensitive in SQL.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim();
    let bad = |why: &str| Err(ApiError::invalid_request(format!("email {why}")));
    if email.is_empty() {
        return bad("is required");
    }
    if email.len() > 254 {
        return bad("is longer than 254 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace or control characters");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email.to_owned())
        }
        _ => bad("must have exactly one @ with text on both sides"),
    }
}

/// The form under which emails are compared: Unicode lower case of the
/// trimmed, validated email.
pub fn canonical_email(email: &str) -> String {
    email.to_lowercase()
}

/// At least 8 characters, and at most 72 bytes (bcrypt ignores the rest, so a
/// longer password would be silently truncated).
pub fn validate_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 8 {
        return Err(ApiError::invalid_request(
            "password must be at least 8 characters",
        ));
    }
    if password.len() > 72 {
        return Err(ApiError::invalid_request(
            "password must be at most 72 bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_keep_their_case() {
        assert_eq!(
            normalize_email("  Ann@Example.org \n").unwrap(),
            "Ann@Example.org"
        );
    }

    #[test]
    fn canonical_emails_fold_unicode_case() {
        assert_eq!(
            canonical_email("ÜNÏ@EXÄMPLE.ORG"),
            canonical_email("ünï@exämple.org")
        );
        assert_eq!(canonical_email("Ann@Example.org"), "ann@example.org");
    }

    #[test]
    fn bad_emails_are_refused() {
        let long = format!("{}@x.io", "a".repeat(250));
        for email in [
            "",
            "   ",
            "plain",
            "@x.io",
            "ann@",
            "a@b@c",
            "a b@x.io",
            "a\u{0}@x.io",
            "a\t@x.io",
            "a@x\u{7f}.io",
            &long,
        ] {
            assert!(normalize_email(email).is_err(), "{email:?}");
        }
    }

    #[test]
    fn an_email_of_254_bytes_is_accepted() {
        let email = format!("{}@x.io", "a".repeat(249));
        assert_eq!(email.len(), 254);
        assert!(normalize_email(&email).is_ok());
    }

    #[test]
    fn passwords_need_8_characters_and_at_most_72_bytes() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"x".repeat(72)).is_ok());
        assert!(validate_password(&"x".repeat(73)).is_err());
        // 8 characters but 24 bytes: fine; 25 three-byte characters: too long.
        assert!(validate_password(&"한".repeat(8)).is_ok());
        assert!(validate_password(&"한".repeat(25)).is_err());
        assert!(validate_password("한국어비밀").is_err());
    }

    #[test]
    fn the_password_is_not_printed() {
        let c = Credentials {
            email: "a@b".into(),
            password: "hunter22".into(),
        };
        assert!(!format!("{c:?}").contains("hunter22"));
    }
}
