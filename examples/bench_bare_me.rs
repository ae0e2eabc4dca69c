//! The "physical limit" reference for `GET /auth/me` in scripts/bench.sh: a
//! bare actix-web server with one handler, `GET /me`, that verifies an
//! `Authorization: Bearer` HS256 token the way authgate does (issuer and
//! audience checked, `exp`, `iss`, `aud`, `sub` required, no leeway; here
//! jsonwebtoken also checks `exp`) and answers a small JSON. No middleware,
//! no shared state beyond the key: whatever authgate spends above this is
//! its own.
//!
//! Usage: bench_bare_me BIND [SECRET ISSUER AUDIENCE]
//! (or BENCH_JWT_SECRET, BENCH_JWT_ISSUER, BENCH_JWT_AUDIENCE; the defaults
//! are authgate's development ones). One worker per core.

use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

struct Keys {
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    typ: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Serialize)]
struct Me {
    id: String,
    email: Option<String>,
    session_id: String,
    roles: Vec<String>,
}

async fn me(req: HttpRequest, keys: web::Data<Keys>) -> HttpResponse {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return HttpResponse::Unauthorized().finish();
    };
    match jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation) {
        Ok(data) if data.claims.typ == "access" => HttpResponse::Ok().json(Me {
            id: data.claims.sub,
            email: data.claims.email,
            session_id: data.claims.sid,
            roles: data.claims.roles,
        }),
        _ => HttpResponse::Unauthorized().finish(),
    }
}

fn setting(args: &[String], index: usize, env: &str, default: &str) -> String {
    args.get(index)
        .cloned()
        .or_else(|| std::env::var(env).ok())
        .unwrap_or_else(|| default.to_owned())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(bind) = args.get(1).cloned() else {
        eprintln!("usage: bench_bare_me BIND [SECRET ISSUER AUDIENCE]");
        std::process::exit(2);
    };
    let secret = setting(
        &args,
        2,
        "BENCH_JWT_SECRET",
        "authgate-development-secret-do-not-use-in-production",
    );
    let issuer = setting(&args, 3, "BENCH_JWT_ISSUER", "authgate");
    let audience = setting(&args, 4, "BENCH_JWT_AUDIENCE", "authgate-clients");

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    validation.leeway = 0;
    let keys = web::Data::new(Keys {
        decoding: DecodingKey::from_secret(secret.as_bytes()),
        validation,
    });
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    HttpServer::new(move || {
        App::new()
            .app_data(keys.clone())
            .route("/me", web::get().to(me))
    })
    .workers(workers)
    .bind(bind)?
    .run()
    .await
}
