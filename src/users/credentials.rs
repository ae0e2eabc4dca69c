//! What counts as a valid email and password (SPEC 3). Pure functions.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// [`normalize_email`]'s rule as a regular expression (ECMA-262, for the
/// OpenAPI document), but for the length in bytes: Unicode White_Space may
/// surround it (it is trimmed), and the parts on either side of the one `@`
/// hold neither White_Space nor control characters (Cc).
pub const EMAIL_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
    r"[^@\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+",
    "@",
    r"[^@\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+",
    r"[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
);

/// The body of signup and login.
#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    #[schema(schema_with = email_schema)]
    pub email: String,
    /// 8 characters to 72 bytes (UTF-8): bcrypt ignores what follows.
    #[schema(example = "correct horse battery", min_length = 8)]
    pub password: String,
}

/// The email's schema: the macro takes only a literal pattern.
fn email_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(EMAIL_PATTERN))
        .description(Some(
            "Trimmed, then exactly one `@` with text on both sides, no whitespace or \
             control characters, at most 254 bytes (UTF-8). The pattern is this rule \
             but for the length.",
        ))
        .examples(["ann@example.org"])
        .build()
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

    proptest::proptest! {
        /// The OpenAPI document's pattern promises no more than the rule:
        /// whatever it matches, short enough, is accepted.
        #[test]
        fn what_the_email_pattern_matches_is_accepted(
            // Without its anchors: proptest generates whole strings anyway.
            email in proptest::string::string_regex(
                EMAIL_PATTERN.trim_start_matches('^').trim_end_matches('$')
            ).unwrap()
        ) {
            if email.trim().len() <= 254 {
                proptest::prop_assert!(normalize_email(&email).is_ok(), "{:?}", email);
            }
        }
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
