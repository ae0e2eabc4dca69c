//! The `Authorization: Bearer <token>` header (RFC 6750 §2.1), parsed.

/// The token of a well-formed bearer header value: the scheme `Bearer` in
/// any case, one or more spaces, and a token of visible ASCII with no space
/// inside. Anything else (another scheme, no token, `Bearer a b`, bytes that
/// are not visible ASCII) is `None`.
pub fn parse_bearer(value: &[u8]) -> Option<&str> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    let start = rest.iter().position(|&b| b != b' ')?;
    let token = &rest[start..];
    // On every request that carries a token: one pass over the bytes that
    // does not stop early, which the compiler turns into vector code.
    let visible = token.iter().fold(true, |ok, b| ok & b.is_ascii_graphic());
    if !(visible && scheme.eq_ignore_ascii_case(b"bearer")) {
        return None;
    }
    // Visible ASCII is UTF-8: this check cannot fail.
    std::str::from_utf8(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_bearer_headers_give_their_token() {
        assert_eq!(parse_bearer(b"Bearer abc.def"), Some("abc.def"));
        assert_eq!(parse_bearer(b"bearer   abc"), Some("abc"));
        assert_eq!(parse_bearer(b"BEARER a-b_c"), Some("a-b_c"));
    }

    #[test]
    fn anything_else_gives_none() {
        for value in [
            &b"Basic dXNlcg=="[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a\tb",
            b"Bearertoken",
            "Bearer tök".as_bytes(),
            b"Bearer \xff",
        ] {
            assert_eq!(parse_bearer(value), None, "{value:?}");
        }
    }
}
