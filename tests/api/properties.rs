//! Property-based tests of every parser a client reaches: the Authorization
//! header, JWT segments, JSON bodies and path ids. Whatever the input, no
//! panic, and only the spec's errors (SPEC 3).
//!
//! Two layers: the pure parsers through the library's public API (many
//! cases, fast), and the real application over HTTP (fewer cases, one app per
//! property). No failure is persisted: a failing case is printed, minimal.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix_web::test::TestRequest;
use authgate::error::ApiError;
use authgate::extract::{parse_id, Body};
use authgate::tokens::{parse_bearer, Claims, SecretKey, TokenKeys, TokenKind};
use authgate::users::{normalize_email, validate_password, Credentials};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::{spawn_app, Pair, TestApp};

/// The spec's closed set of error codes.
const CODES: [&str; 11] = [
    "invalid_request",
    "invalid_credentials",
    "email_taken",
    "invalid_token",
    "token_expired",
    "token_reused",
    "session_revoked",
    "forbidden",
    "not_found",
    "rate_limited",
    "unavailable",
];

/// Cases of a pure property.
const PURE_CASES: u32 = 512;
/// Cases of a property over HTTP.
const HTTP_CASES: u32 = 128;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        // An HTTP case costs a request: keep shrinking bounded.
        max_shrink_iters: 512,
        ..Config::default()
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Bytes shown escaped in a failing case.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Object keys: the fields the API reads, and anything else.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("email".to_owned()),
        Just("password".to_owned()),
        Just("refresh_token".to_owned()),
        Just("alg".to_owned()),
        any::<String>(),
    ]
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        any::<String>().prop_map(Value::String),
        "\\PC{0,80}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Strings that look like emails, near and across the spec's rules.
fn email_like() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        3 => "[a-zA-Z0-9.+_-]{1,16}@[a-z0-9.-]{1,16}",
        2 => "\\PC{1,12}@\\PC{1,12}",
        2 => "[ \t\n\u{0}\u{1f}\u{7f}\u{a0}\u{2028}\u{3000}]{0,2}[a-z@ \u{0}\t\u{85}]{0,8}@[a-z@.]{0,8}[ \t\n\u{3000}]{0,2}",
        1 => "[a-z]{240,260}@x\\.io",
        1 => "é{118,128}@x\\.io",
        1 => "İ{60,80}@x\\.io",
    ]
}

/// Passwords near the rules: 8 characters, 72 bytes.
fn password_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{6,10}",
        "[a-z]{70,74}",
        "[é한😀a]{6,40}",
    ]
}

/// Credential-shaped objects: these reach the email and password rules and
/// the database, not only the JSON parser.
fn credentials_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (email_like(), password_like()).prop_map(|(e, p)| json!({ "email": e, "password": p })),
        1 => (email_like(), json_value()).prop_map(|(e, p)| json!({ "email": e, "password": p })),
        1 => (json_value(), password_like()).prop_map(|(e, p)| json!({ "email": e, "password": p })),
        2 => any::<String>().prop_map(|t| json!({ "refresh_token": t })),
        1 => json_value().prop_map(|t| json!({ "refresh_token": t })),
    ]
}

/// Bytes that are almost JSON: fragments of the bodies the API reads, with
/// escapes JSON parsers trip on (lone surrogates, NUL, deep nesting).
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(&b"{"[..]),
        Just(&b"}"[..]),
        Just(&b"["[..]),
        Just(&b"]"[..]),
        Just(&b":"[..]),
        Just(&b","[..]),
        Just(&b"\""[..]),
        Just(&b"\"email\""[..]),
        Just(&b"\"password\""[..]),
        Just(&b"\"refresh_token\""[..]),
        Just(&b"\"a@b.io\""[..]),
        Just(&b"\"12345678\""[..]),
        Just(&b"\"\\ud800\""[..]),
        Just(&b"\"\\udc00\\ud800\""[..]),
        Just(&b"\"\\u0000\""[..]),
        Just(&b"\"\\x\""[..]),
        Just(&b"1e999"[..]),
        Just(&b"-0"[..]),
        Just(&b"null"[..]),
        Just(&b"true"[..]),
        Just(&b" \t\r\n"[..]),
        Just(&b"\xef\xbb\xbf"[..]),
        Just(&b"\xff\xfe"[..]),
        Just(&b"\x00"[..]),
    ];
    prop_oneof![
        prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat()),
        (1usize..300).prop_map(|n| "[".repeat(n).into_bytes()),
        (1usize..300).prop_map(|n| {
            let mut s = "{\"email\":".repeat(n);
            s.push('1');
            s.into_bytes()
        }),
    ]
}

/// A request body of any kind, now and then over the 64 KiB limit.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => bytes(512),
        4 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        12 => credentials_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        4 => json_soup(),
        1 => (64 * 1024 - 8..70 * 1024usize, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

/// Content types: mostly JSON (so that bodies reach the parser), and others.
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        16 => Just(Some("application/json".to_owned())),
        3 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => "application/[a-z.+-]{0,10}json[;a-z= ]{0,12}".prop_map(Some),
        1 => Just(None),
        1 => Just(Some("text/plain".to_owned())),
        2 => "[ -~]{0,40}".prop_map(Some),
        1 => bytes(40).prop_filter_map("a header value", |b| {
            // Visible bytes (latin-1 included) that a header can carry.
            HeaderValue::from_bytes(&b).ok().map(|_| Some(String::from_utf8_lossy(&b).into_owned()))
        }),
    ]
}

/// Header JSON for a JWT: the alg values an attacker tries, and noise.
fn jwt_header() -> impl Strategy<Value = Value> {
    let alg = prop_oneof![
        Just(json!("none")),
        Just(json!("None")),
        Just(json!("NONE")),
        Just(json!("HS256")),
        Just(json!("hs256")),
        Just(json!("HS384")),
        Just(json!("HS512")),
        Just(json!("RS256")),
        Just(json!("ES256")),
        Just(json!("PS256")),
        Just(json!("EdDSA")),
        Just(json!("")),
        any::<String>().prop_map(Value::String),
        json_value(),
    ];
    let typ = prop_oneof![
        Just(None),
        Just(Some(json!("JWT"))),
        json_value().prop_map(Some)
    ];
    let extra = prop::collection::btree_map(
        prop_oneof![
            Just("kid".to_owned()),
            Just("jku".to_owned()),
            Just("jwk".to_owned()),
            Just("crit".to_owned()),
            Just("cty".to_owned()),
            Just("x5c".to_owned()),
            any::<String>(),
        ],
        json_value(),
        0..3,
    );
    prop_oneof![
        4 => (alg, typ, extra).prop_map(|(alg, typ, extra)| {
            let mut header: serde_json::Map<String, Value> = extra.into_iter().collect();
            header.insert("alg".into(), alg);
            if let Some(typ) = typ {
                header.insert("typ".into(), typ);
            }
            Value::Object(header)
        }),
        1 => json_value(),
    ]
}

/// One segment of a JWT-looking string: base64url of JSON, of bytes, or not
/// base64url at all.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_value().prop_map(|v| b64(serde_json::to_vec(&v).unwrap())),
        3 => bytes(96).prop_map(b64),
        1 => "[A-Za-z0-9_-]{0,64}",
        1 => "[A-Za-z0-9_+/=-]{0,64}",
        1 => "[ -~]{0,16}",
    ]
}

/// Three segments joined by dots: header JSON, payload, signature.
fn jwt_looking() -> impl Strategy<Value = String> {
    prop_oneof![
        (segment(), segment(), segment()).prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
        (jwt_header(), json_value(), bytes(64)).prop_map(|(h, p, s)| {
            format!(
                "{}.{}.{}",
                b64(serde_json::to_vec(&h).unwrap()),
                b64(serde_json::to_vec(&p).unwrap()),
                b64(s)
            )
        }),
        prop::collection::vec(segment(), 0..6).prop_map(|segs| segs.join(".")),
    ]
}

/// How a valid token is damaged.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at this position (modulo the length) with this one.
    Replace(usize, u8),
    /// Flip one bit of the byte at this position.
    FlipBit(usize, u8),
    /// Keep only this many bytes (modulo the length).
    Truncate(usize),
    /// Insert a byte at this position.
    Insert(usize, u8),
    /// Remove the byte at this position.
    Remove(usize),
    /// Replace one segment (0, 1 or 2) with another string.
    Segment(usize, String),
    /// Swap two segments.
    Swap(usize, usize),
}

fn token_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()
        ),
        1 => prop::sample::select(b"./+= ".to_vec()),
        1 => 0x21u8..0x7f,
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), token_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), token_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (0usize..3, segment()).prop_map(|(i, s)| Mutation::Segment(i, s)),
        (0usize..3, 0usize..3).prop_map(|(i, j)| Mutation::Swap(i, j)),
    ]
}

/// Applies a mutation; the result may not be UTF-8 (a flipped bit), in
/// which case it is lossily converted, as a client would have to.
fn mutate(token: &str, mutation: &Mutation) -> String {
    let mut b = token.as_bytes().to_vec();
    let len = b.len();
    match *mutation {
        Mutation::Replace(i, x) => b[i % len] = x,
        Mutation::FlipBit(i, bit) => b[i % len] ^= 1 << bit,
        Mutation::Truncate(n) => b.truncate(n % len),
        Mutation::Insert(i, x) => b.insert(i % (len + 1), x),
        Mutation::Remove(i) => {
            b.remove(i % len);
        }
        Mutation::Segment(i, ref s) => {
            let mut segs: Vec<&str> = token.split('.').collect();
            segs[i] = s.as_str();
            return segs.join(".");
        }
        Mutation::Swap(i, j) => {
            let mut segs: Vec<&str> = token.split('.').collect();
            segs.swap(i, j);
            return segs.join(".");
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986), or every
/// byte: a path segment the URL parser leaves as it is.
fn percent_encode(raw: &[u8], everything: bool) -> String {
    raw.iter()
        .map(|&b| {
            if !everything && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A path id: any non-empty bytes, or strings near a UUID. `.` and `..` are
/// left out: they are dot segments, which the URL parser resolves before
/// sending (to another path), not ids.
fn path_id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..80),
        "\\PC{1,40}".prop_map(String::into_bytes),
        "[0-9a-fA-F{}:urn-]{1,45}".prop_map(String::into_bytes),
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string().into_bytes()),
        (any::<u128>(), any::<usize>(), token_byte()).prop_map(|(n, i, b)| {
            let mut s = Uuid::from_u128(n).to_string().into_bytes();
            let i = i % s.len();
            s[i] = b;
            s
        }),
    ]
    .prop_filter("a dot segment", |id| id != b"." && id != b"..")
}

// ---------------------------------------------------------------------------
// Pure layer: the parsers through the public API
// ---------------------------------------------------------------------------

/// The scheme `bearer` in any case, spaces, and a visible-ASCII token.
fn bearer_header() -> impl Strategy<Value = (Vec<u8>, String)> {
    (
        prop::collection::vec(any::<bool>(), 6),
        1usize..6,
        "[!-~]{1,80}",
    )
        .prop_map(|(upper, spaces, token)| {
            let scheme: String = "bearer"
                .chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect();
            let value = format!("{scheme}{}{token}", " ".repeat(spaces));
            (value.into_bytes(), token)
        })
}

/// Arbitrary bytes, and bytes that start like a bearer header.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(120),
        bytes(80).prop_map(|rest| [&b"Bearer "[..], &rest].concat()),
        (
            prop::sample::select(vec![
                &b"Bearer"[..],
                b"bearer",
                b"BEARER",
                b"Basic",
                b"Bear"
            ]),
            prop::collection::vec(
                prop::sample::select(b" \t\r\n\x00\x0b\x0c\xa0ab.=-".to_vec()),
                0..12
            ),
        )
            .prop_map(|(scheme, rest)| [scheme, &rest].concat()),
    ]
}

proptest! {
    #![proptest_config(config(PURE_CASES))]

    #[test]
    fn parse_bearer_returns_only_the_token_of_a_well_formed_header(value in header_bytes()) {
        if let Some(token) = parse_bearer(&value) {
            prop_assert!(!token.is_empty());
            prop_assert!(token.bytes().all(|b| b.is_ascii_graphic()), "{token:?}");
            prop_assert!(value.len() > 6 + token.len());
            prop_assert!(value[..6].eq_ignore_ascii_case(b"bearer"));
            let (gap, tail) = value[6..].split_at(value.len() - 6 - token.len());
            prop_assert!(!gap.is_empty() && gap.iter().all(|&b| b == b' '), "{:?}", Bytes(value.clone()));
            prop_assert_eq!(tail, token.as_bytes());
        }
    }

    #[test]
    fn parse_bearer_finds_the_token_of_any_well_formed_header((value, token) in bearer_header()) {
        prop_assert_eq!(parse_bearer(&value), Some(token.as_str()));
    }

    #[test]
    fn parse_bearer_reads_back_any_visible_ascii_token(token in "[!-~]{1,200}") {
        let header = format!("Bearer {token}");
        prop_assert_eq!(parse_bearer(header.as_bytes()), Some(token.as_str()));
    }
}

fn keys() -> TokenKeys {
    TokenKeys::new(&SecretKey::new(SECRET), "authgate", "authgate-clients")
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-property-tests";

/// Claims with arbitrary (short) strings where the server puts UUIDs.
fn claims() -> impl Strategy<Value = Claims> {
    let id = prop_oneof![
        8 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => "\\PC{0,20}",
    ];
    (
        id.clone(),
        id.clone(),
        id,
        prop_oneof![Just(TokenKind::Access), Just(TokenKind::Refresh)],
        any::<i64>(),
        // jsonwebtoken reads exp as a NumericDate, which is never negative
        // (and the server only signs exp = now + lifetime).
        0..=i64::MAX,
        prop::collection::vec("\\PC{0,10}", 0..3),
        prop::option::of("\\PC{0,30}"),
    )
        .prop_map(|(sub, sid, jti, typ, iat, exp, roles, email)| Claims {
            iss: "authgate".into(),
            aud: "authgate-clients".into(),
            sub,
            sid,
            jti,
            typ,
            iat,
            exp,
            roles,
            email,
        })
}

fn other_kind(kind: TokenKind) -> TokenKind {
    match kind {
        TokenKind::Access => TokenKind::Refresh,
        TokenKind::Refresh => TokenKind::Access,
    }
}

/// HMAC-SHA256 (RFC 2104), to sign headers `jsonwebtoken` would not write.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// `header.payload.signature`, signed with our key under any header.
fn sign_raw(header: &Value, claims: &Claims) -> String {
    let input = format!(
        "{}.{}",
        b64(serde_json::to_vec(header).unwrap()),
        b64(serde_json::to_vec(claims).unwrap())
    );
    let signature = hmac_sha256(SECRET.as_bytes(), input.as_bytes());
    format!("{input}.{}", b64(signature))
}

proptest! {
    #![proptest_config(config(PURE_CASES))]

    #[test]
    fn verify_refuses_arbitrary_strings(token in prop_oneof![
        any::<String>(),
        "[ -~]{0,200}",
        "[A-Za-z0-9_.-]{4090,4100}",
    ]) {
        prop_assert!(keys().verify(&token, TokenKind::Access).is_err());
        prop_assert!(keys().verify(&token, TokenKind::Refresh).is_err());
    }

    #[test]
    fn verify_refuses_jwt_looking_strings(token in jwt_looking()) {
        prop_assert!(keys().verify(&token, TokenKind::Access).is_err(), "{token}");
        prop_assert!(keys().verify(&token, TokenKind::Refresh).is_err(), "{token}");
    }

    #[test]
    fn verify_accepts_exactly_the_tokens_we_signed(claims in claims(), mutation in mutation()) {
        let keys = keys();
        let token = keys.sign(&claims);
        // Ours, unless an id claim is not a UUID (the server never signs one).
        let ids_are_uuids = [&claims.sub, &claims.sid, &claims.jti]
            .iter()
            .all(|id| Uuid::parse_str(id).is_ok());
        match keys.verify(&token, claims.typ) {
            Ok(verified) => {
                prop_assert!(ids_are_uuids);
                prop_assert_eq!(&verified.claims, &claims);
            }
            Err(_) => prop_assert!(!ids_are_uuids, "refused our own {token}"),
        }
        prop_assert!(keys.verify(&token, other_kind(claims.typ)).is_err());
        let damaged = mutate(&token, &mutation);
        if damaged != token {
            prop_assert!(
                keys.verify(&damaged, claims.typ).is_err(),
                "accepted {damaged:?}, from {token:?}"
            );
        }
    }

    #[test]
    fn verify_refuses_another_header_over_a_signed_payload(
        claims in claims(),
        header in jwt_header(),
    ) {
        let keys = keys();
        let token = keys.sign(&claims);
        let (original_header, rest) = token.split_once('.').unwrap();
        let new_header = b64(serde_json::to_vec(&header).unwrap());
        // The original signature under another header.
        if new_header != original_header {
            let forged = format!("{new_header}.{rest}");
            prop_assert!(keys.verify(&forged, claims.typ).is_err(), "{header}");
        }
        // Signed with our key, but naming another algorithm (none included).
        if header.get("alg") != Some(&json!("HS256")) {
            let resigned = sign_raw(&header, &claims);
            prop_assert!(keys.verify(&resigned, claims.typ).is_err(), "{header}");
        }
    }

    #[test]
    fn verify_refuses_other_hmac_algorithms_with_our_key(
        claims in claims(),
        alg in prop_oneof![
            Just(jsonwebtoken::Algorithm::HS384),
            Just(jsonwebtoken::Algorithm::HS512),
        ],
    ) {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        prop_assert!(keys().verify(&token, claims.typ).is_err());
    }
}

/// The textual forms of a UUID that `parse_id` takes, hex digits in lower or
/// upper case.
fn uuid_forms(id: Uuid, upper: bool) -> [String; 4] {
    let hex = |s: String| if upper { s.to_uppercase() } else { s };
    [
        hex(id.hyphenated().to_string()),
        hex(id.simple().to_string()),
        hex(id.braced().to_string()),
        format!("urn:uuid:{}", hex(id.hyphenated().to_string())),
    ]
}

/// The spec's email rules, as an oracle.
fn email_is_valid(raw: &str) -> bool {
    let email = raw.trim();
    let parts: Vec<&str> = email.split('@').collect();
    !email.is_empty()
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && parts.len() == 2
        && parts.iter().all(|p| !p.is_empty())
}

proptest! {
    #![proptest_config(config(PURE_CASES))]

    #[test]
    fn parse_id_takes_only_uuids(raw in prop_oneof![
        any::<String>(),
        "[0-9a-fA-FxX{}:urn-]{30,46}",
        (any::<u128>(), any::<bool>())
            .prop_flat_map(|(n, up)| prop::sample::select(uuid_forms(Uuid::from_u128(n), up).to_vec())),
    ]) {
        match parse_id(&raw) {
            Ok(id) => prop_assert!(
                uuid_forms(id, false).contains(&raw.to_ascii_lowercase()),
                "{raw:?} gave {id}"
            ),
            Err(err) => prop_assert_eq!(err.code(), "not_found"),
        }
    }

    #[test]
    fn parse_id_takes_every_form_of_a_uuid(n in any::<u128>(), upper in any::<bool>()) {
        let id = Uuid::from_u128(n);
        for form in uuid_forms(id, upper) {
            prop_assert_eq!(parse_id(&form).ok(), Some(id));
        }
    }

    #[test]
    fn normalize_email_agrees_with_the_spec(raw in email_like()) {
        match normalize_email(&raw) {
            Ok(email) => {
                prop_assert!(email_is_valid(&raw), "accepted {raw:?}");
                prop_assert_eq!(email.as_str(), raw.trim());
                prop_assert_eq!(email.matches('@').count(), 1);
                prop_assert!(email.len() <= 254);
                prop_assert!(!email.chars().any(|c| c.is_whitespace() || c.is_control()));
                prop_assert_eq!(normalize_email(&email).ok(), Some(email.clone()));
            }
            Err(err) => {
                prop_assert!(!email_is_valid(&raw), "refused {raw:?}");
                prop_assert_eq!(err.code(), "invalid_request");
            }
        }
    }

    #[test]
    fn validate_password_agrees_with_the_spec(password in password_like()) {
        let valid = password.chars().count() >= 8 && password.len() <= 72;
        match validate_password(&password) {
            Ok(()) => prop_assert!(valid, "accepted {password:?}"),
            Err(err) => {
                prop_assert!(!valid, "refused {password:?}");
                prop_assert_eq!(err.code(), "invalid_request");
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct RefreshBody {
    refresh_token: String,
}

fn request_with(content_type: Option<&str>) -> actix_web::HttpRequest {
    let mut request = TestRequest::post();
    if let Some(content_type) = content_type {
        let value = actix_web::http::header::HeaderValue::from_bytes(content_type.as_bytes())
            .expect("a header value");
        request = request.insert_header((actix_web::http::header::CONTENT_TYPE, value));
    }
    request.to_http_request()
}

fn only_invalid_request<T>(result: Result<T, ApiError>) -> Result<Option<T>, TestCaseError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.code() == "invalid_request" => Ok(None),
        Err(err) => Err(TestCaseError::fail(format!("error {}: {err}", err.code()))),
    }
}

proptest! {
    #![proptest_config(config(PURE_CASES))]

    #[test]
    fn body_json_fails_only_with_invalid_request(
        content_type in content_type(),
        body in prop_oneof![
            bytes(300),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            credentials_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            json_soup(),
        ],
    ) {
        let req = request_with(content_type.as_deref());
        let body = Body(actix_web::web::Bytes::from(body));
        only_invalid_request(body.json::<Credentials>(&req))?;
        only_invalid_request(body.json::<RefreshBody>(&req))?;
        let value = only_invalid_request(body.json::<Value>(&req))?;
        if content_type.as_deref() == Some("application/json") {
            // With a JSON content type, what serde_json reads is read.
            prop_assert_eq!(&value, &serde_json::from_slice::<Value>(&body.0).ok());
        }
        let is_json_type = content_type
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
        if !is_json_type {
            prop_assert!(value.is_none(), "read JSON under {content_type:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP layer: the real application
// ---------------------------------------------------------------------------

/// One application, shared by all the cases of one property.
struct Harness {
    rt: tokio::runtime::Runtime,
    app: TestApp,
}

impl Harness {
    fn new() -> Harness {
        let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let app = rt.block_on(spawn_app());
        Harness { rt, app }
    }

    /// Runs the property on `cases` cases; a failure panics with the minimal
    /// failing input.
    fn check<S: Strategy>(
        &self,
        cases: u32,
        strategy: S,
        test: impl Fn(&TestApp, S::Value) -> Result<(), TestCaseError>,
    ) {
        let started = std::time::Instant::now();
        let runs = AtomicU32::new(0);
        let mut runner = TestRunner::new(config(cases));
        let result = runner.run(&strategy, |value| {
            runs.fetch_add(1, Ordering::Relaxed);
            test(&self.app, value)
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
        eprintln!(
            "{} cases over HTTP in {:.1?}",
            runs.load(Ordering::Relaxed),
            started.elapsed()
        );
    }

    fn logged_in(&self) -> Pair {
        self.rt.block_on(async { self.app.logged_in().await.1 })
    }
}

/// What the server answered.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Sends the request; no answer (a handler panicked, say) fails the case.
async fn send(request: RequestBuilder) -> Result<Reply, TestCaseError> {
    let response = request
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_err(|err| TestCaseError::fail(format!("no response (a panic?): {err:?}")))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|err| TestCaseError::fail(format!("the body broke off: {err:?}")))?
        .to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The statuses each code goes with (SPEC 3).
fn statuses_of(code: &str) -> &'static [u16] {
    match code {
        "invalid_request" => &[400, 405, 413],
        "invalid_credentials"
        | "invalid_token"
        | "token_expired"
        | "token_reused"
        | "session_revoked" => &[401],
        "email_taken" => &[409],
        "forbidden" => &[403],
        "not_found" => &[404],
        "rate_limited" => &[429],
        "unavailable" => &[503],
        _ => &[],
    }
}

impl Reply {
    fn describe(&self) -> String {
        format!(
            "{} {:?} {}",
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }

    fn fail(&self, why: &str) -> TestCaseError {
        TestCaseError::fail(format!("{why}: {}", self.describe()))
    }

    /// The code of a spec error body: JSON with exactly `error` (of the
    /// closed set, matching the status) and a non-empty `message`. Never 5xx.
    fn error_code(&self) -> Result<String, TestCaseError> {
        if self.status >= 500 {
            return Err(self.fail("a server error"));
        }
        let body: Value =
            serde_json::from_slice(&self.body).map_err(|_| self.fail("not a JSON body"))?;
        let object = body.as_object().ok_or_else(|| self.fail("not an object"))?;
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        if keys != BTreeSet::from(["error", "message"]) {
            return Err(self.fail("other keys than error and message"));
        }
        if object["message"].as_str().is_none_or(str::is_empty) {
            return Err(self.fail("no message"));
        }
        let code = object["error"]
            .as_str()
            .ok_or_else(|| self.fail("error is not a string"))?;
        if !CODES.contains(&code) {
            return Err(self.fail("a code outside the spec's set"));
        }
        if !statuses_of(code).contains(&self.status) {
            return Err(self.fail("a code with another status"));
        }
        Ok(code.to_owned())
    }

    fn expect(&self, status: u16, codes: &[&str]) -> Result<String, TestCaseError> {
        let code = self.error_code()?;
        if self.status != status || !codes.contains(&code.as_str()) {
            return Err(self.fail(&format!("expected {status} {codes:?}")));
        }
        Ok(code)
    }

    fn challenge(&self) -> Result<&str, TestCaseError> {
        self.headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.fail("no WWW-Authenticate"))
    }
}

const JSON_PATHS: [&str; 4] = [
    "/auth/signup",
    "/auth/login",
    "/auth/reissue",
    "/auth/logout",
];

#[derive(Clone)]
struct BodyCase {
    path: &'static str,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl fmt::Debug for BodyCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyCase")
            .field("path", &self.path)
            .field("content_type", &self.content_type)
            .field("body", &Bytes(self.body.clone()))
            .finish()
    }
}

#[test]
fn http_any_body_on_the_json_endpoints_gets_a_spec_answer() {
    let harness = Harness::new();
    let strategy = (
        prop::sample::select(JSON_PATHS.to_vec()),
        content_type(),
        body_bytes(),
    )
        .prop_map(|(path, content_type, body)| BodyCase {
            path,
            content_type,
            body,
        });
    harness.check(2 * HTTP_CASES, strategy, |app, case| {
        harness.rt.block_on(async {
            let mut request = app.client.post(app.url(case.path)).body(case.body.clone());
            if let Some(content_type) = &case.content_type {
                request = request.header(CONTENT_TYPE, content_type.as_bytes());
            }
            let reply = send(request).await?;
            match reply.status {
                // Valid by chance: a signup, say.
                200 | 201 | 204 => Ok(()),
                400 | 401 | 409 | 413 | 429 => reply.error_code().map(drop),
                _ => Err(reply.fail("an unexpected status")),
            }
        })
    });
}

/// Authorization header values: arbitrary visible ASCII, arbitrary bytes a
/// header can carry, and bearer headers of JWT-looking tokens.
fn authorization_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,120}".prop_map(String::into_bytes),
        header_bytes(),
        jwt_looking().prop_map(|t| format!("Bearer {t}").into_bytes()),
        bearer_header().prop_map(|(value, _)| value),
    ]
    .prop_filter("a value reqwest sends", |v| {
        HeaderValue::from_bytes(v).is_ok()
    })
}

/// An endpoint that takes an access token, with `{id}` for a path id.
const TOKEN_ENDPOINTS: [(&str, &str); 5] = [
    ("GET", "/auth/me"),
    ("GET", "/auth/sessions"),
    ("POST", "/auth/logout-all"),
    ("DELETE", "/auth/sessions/{id}"),
    ("POST", "/admin/users/{id}/revoke-sessions"),
];

#[derive(Clone)]
struct AuthCase {
    method: &'static str,
    path: String,
    authorization: Vec<u8>,
}

impl fmt::Debug for AuthCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCase")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("authorization", &Bytes(self.authorization.clone()))
            .finish()
    }
}

/// Authentication comes before the path id: a random UUID or any id.
fn auth_case() -> impl Strategy<Value = AuthCase> {
    let id = prop_oneof![
        3 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => encoded_path_id().prop_map(|id| id.encoded()),
    ];
    (
        prop::sample::select(TOKEN_ENDPOINTS.to_vec()),
        id,
        authorization_value(),
    )
        .prop_map(|((method, template), id, authorization)| AuthCase {
            method,
            path: template.replace("{id}", &id),
            authorization,
        })
}

#[test]
fn http_any_authorization_header_gets_401_with_a_bearer_challenge() {
    let harness = Harness::new();
    harness.check(2 * HTTP_CASES, auth_case(), |app, case| {
        harness.rt.block_on(async {
            let method = Method::from_bytes(case.method.as_bytes()).unwrap();
            let value = HeaderValue::from_bytes(&case.authorization).unwrap();
            let request = app
                .client
                .request(method, app.url(&case.path))
                .header(AUTHORIZATION, value);
            let reply = send(request).await?;
            reply.expect(401, &["invalid_token", "token_expired", "session_revoked"])?;
            if !reply.challenge()?.starts_with("Bearer") {
                return Err(reply.fail("a challenge that is not Bearer"));
            }
            Ok(())
        })
    });
}

#[derive(Clone)]
struct PathId(Vec<u8>, bool);

impl PathId {
    fn encoded(&self) -> String {
        percent_encode(&self.0, self.1)
    }
}

impl fmt::Debug for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} sent as {:?}",
            Bytes(self.0.clone()),
            self.encoded()
        )
    }
}

fn encoded_path_id() -> impl Strategy<Value = PathId> {
    (path_id(), any::<bool>()).prop_map(|(id, everything)| PathId(id, everything))
}

#[test]
fn http_any_session_id_of_an_authenticated_caller_is_404() {
    let harness = Harness::new();
    let pair = harness.logged_in();
    harness.check(HTTP_CASES, encoded_path_id(), |app, id| {
        harness.rt.block_on(async {
            let request = app
                .client
                .delete(app.url(&format!("/auth/sessions/{}", id.encoded())))
                .bearer_auth(&pair.access);
            send(request).await?.expect(404, &["not_found"]).map(drop)
        })
    });
}

#[test]
fn http_any_user_id_for_a_non_admin_is_403() {
    let harness = Harness::new();
    let pair = harness.logged_in();
    harness.check(HTTP_CASES, encoded_path_id(), |app, id| {
        harness.rt.block_on(async {
            let path = format!("/admin/users/{}/revoke-sessions", id.encoded());
            let request = app.client.post(app.url(&path)).bearer_auth(&pair.access);
            send(request).await?.expect(403, &["forbidden"]).map(drop)
        })
    });
}

#[derive(Debug, Clone)]
enum RefreshCase {
    Looking(String),
    Damaged(Mutation),
}

#[test]
fn http_any_jwt_looking_refresh_token_is_401_invalid_token() {
    let harness = Harness::new();
    let pair = harness.logged_in();
    let strategy = prop_oneof![
        jwt_looking().prop_map(RefreshCase::Looking),
        mutation().prop_map(RefreshCase::Damaged),
    ];
    harness.check(HTTP_CASES, strategy, |app, case| {
        let token = match &case {
            RefreshCase::Looking(token) => token.clone(),
            RefreshCase::Damaged(mutation) => mutate(&pair.refresh, mutation),
        };
        if token == pair.refresh {
            return Ok(());
        }
        harness.rt.block_on(async {
            let request = app
                .client
                .post(app.url("/auth/reissue"))
                .json(&json!({ "refresh_token": token }));
            send(request)
                .await?
                .expect(401, &["invalid_token"])
                .map(drop)
        })
    });
}
