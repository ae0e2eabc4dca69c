//! `GET /openapi.json` (SPEC 7.3): an OpenAPI 3.1 document that names every
//! route of the routing table, and every error status of each operation with
//! the error body. Whether the server keeps to it is schemathesis' job
//! (scripts/interop.sh).

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

/// The routing table as written in src/routes/mod.rs: each
/// `resource("PATH", "METHODS")`, read from the source so that a route added
/// there without its `#[utoipa::path]` fails here.
fn routing_table() -> Vec<(String, String)> {
    let source = include_str!("../../src/routes/mod.rs");
    let mut routes = Vec::new();
    for call in source.split("resource(\"").skip(1) {
        let mut quoted = call.split('"');
        let path = quoted.next().expect("a path");
        let between = quoted.next().map(str::trim);
        assert_eq!(between, Some(","), "resource(\"{path}\", \"…\")");
        let methods = quoted.next().expect("the allowed methods");
        for method in methods.split(',') {
            routes.push((path.to_owned(), method.trim().to_lowercase()));
        }
    }
    // The helper's own definition, `resource(path: &str, …)`, has no quote.
    assert!(routes.len() >= 12, "the table was not found: {routes:?}");
    routes
}

async fn fetch_document() -> Value {
    let app = spawn_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    response.json().await.expect("a JSON document")
}

/// Follows a local `$ref` (`#/components/...`), once.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolvable {reference}")),
        None => value,
    }
}

fn operations(doc: &Value) -> impl Iterator<Item = (String, String, &Value)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .iter()
                .map(move |(method, op)| (path.clone(), method.clone(), op))
        })
}

fn statuses(op: &Value) -> BTreeSet<u16> {
    op["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|status| status.parse().expect("a numeric status"))
        .collect()
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_of_this_server() {
    let doc = fetch_document().await;

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "authgate");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_route_of_the_routing_table_is_documented_with_its_method() {
    let doc = fetch_document().await;

    for (path, method) in routing_table() {
        assert!(
            doc["paths"][&path][&method].is_object(),
            "{} {path} is routed but not in /openapi.json",
            method.to_uppercase()
        );
    }
}

#[tokio::test]
async fn every_error_status_is_the_error_body_and_none_is_500() {
    let doc = fetch_document().await;
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the closed set of codes")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
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
        ]
    );
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error_body["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    assert_eq!(error_body["properties"]["message"]["type"], "string");

    for (path, method, op) in operations(&doc) {
        let statuses = statuses(op);
        assert!(
            statuses.iter().any(|s| (200..300).contains(s)),
            "{method} {path}: no success status"
        );
        assert!(
            !statuses.contains(&500),
            "{method} {path}: 500 is never intended"
        );
        if path.starts_with("/oauth/") {
            // RFC 6749 5.2 errors there, not the closed set (SPEC 7.2).
            continue;
        }
        for status in statuses.iter().filter(|s| **s >= 400) {
            let response = resolve(&doc, &op["responses"][status.to_string()]);
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
    }
}

/// The error statuses that follow from what an operation takes: a body can
/// be malformed (400) or too large (413), a bearer token missing or refused
/// (401, with its RFC 6750 challenge), and the database slow (503).
#[tokio::test]
async fn every_operation_lists_the_errors_of_what_it_takes() {
    let doc = fetch_document().await;

    for (path, method, op) in operations(&doc) {
        let statuses = statuses(op);
        let label = format!("{} {path}", method.to_uppercase());
        if op.get("requestBody").is_some() {
            assert!(statuses.contains(&400), "{label}: 400");
            assert!(statuses.contains(&413), "{label}: 413");
        }
        if op.get("security").is_some() {
            assert!(statuses.contains(&401), "{label}: 401");
            let unauthorized = resolve(&doc, &op["responses"]["401"]);
            let challenge = &unauthorized["headers"]["WWW-Authenticate"];
            assert_eq!(challenge["required"], true, "{label}: WWW-Authenticate");
        }
        // Every /auth and /admin operation but /auth/me asks PostgreSQL.
        let asks_the_database =
            (path.starts_with("/auth/") || path.starts_with("/admin/")) && label != "GET /auth/me";
        if asks_the_database {
            assert!(statuses.contains(&503), "{label}: 503");
        }
    }

    let login = &doc["paths"]["/auth/login"]["post"];
    assert!(statuses(login).is_superset(&BTreeSet::from([401, 429])));
    let limited = resolve(&doc, &login["responses"]["429"]);
    assert_eq!(
        limited["headers"]["Retry-After"]["schema"]["type"],
        "integer"
    );
    let signup = &doc["paths"]["/auth/signup"]["post"];
    assert!(statuses(signup).contains(&409));
    let admin = &doc["paths"]["/admin/users/{user_id}/revoke-sessions"]["post"];
    assert!(statuses(admin).is_superset(&BTreeSet::from([403, 404])));
    let delete = &doc["paths"]["/auth/sessions/{id}"]["delete"];
    assert!(statuses(delete).contains(&404));
}

#[tokio::test]
async fn cookie_mode_is_documented_where_it_is_taken() {
    let doc = fetch_document().await;
    let taking = [
        ("/auth/login", true),
        ("/auth/reissue", true),
        ("/auth/logout", false),
        ("/auth/logout-all", false),
    ];
    for (path, returns_tokens) in taking {
        let op = &doc["paths"][path]["post"];
        let params = op["parameters"].as_array().expect("parameters");
        let transport = params
            .iter()
            .find(|p| p["name"] == "Token-Transport")
            .unwrap_or_else(|| panic!("{path}: Token-Transport"));
        assert_eq!(transport["in"], "header", "{path}");
        assert_ne!(transport["required"], true, "{path}");
        let schema = resolve(&doc, &transport["schema"]);
        let schema = schema
            .get("oneOf")
            .and_then(|alternatives| alternatives.as_array())
            .and_then(|alternatives| alternatives.iter().find(|s| s.get("$ref").is_some()))
            .map(|s| resolve(&doc, s))
            .unwrap_or(schema);
        assert_eq!(schema["enum"], json!(["cookie"]), "{path}: {schema}");
        assert!(
            statuses(op).contains(&403),
            "{path}: 403 for a foreign Origin"
        );
        let ok = resolve(
            &doc,
            &op["responses"][if returns_tokens { "200" } else { "204" }],
        );
        let set_cookie = &ok["headers"]["Set-Cookie"];
        assert!(set_cookie.is_object(), "{path}: Set-Cookie");
        assert_ne!(
            set_cookie["required"], true,
            "{path}: only cookie mode sets it"
        );
    }
    let tokens = resolve(
        &doc,
        &doc["paths"]["/auth/login"]["post"]["responses"]["200"],
    );
    let bodies = &tokens["content"]["application/json"]["schema"]["anyOf"];
    assert_eq!(bodies.as_array().map(Vec::len), Some(2), "{tokens}");
    let cookie_tokens = &doc["components"]["schemas"]["CookieTokens"];
    assert!(cookie_tokens["properties"].get("refresh_token").is_none());
    assert!(cookie_tokens["properties"].get("access_token").is_some());
}
