//! Load for the sweeper benchmark (scripts/bench-sweeper.sh): N workers each
//! log in once and then rotate their own refresh-token chain as fast as they
//! can, for at most D seconds. Every reissue is written to stdout as
//! `<start unix µs> <latency µs> <status>`, so that the caller can cut the
//! run into windows (before and during a sweeper pass).
//!
//! Usage: reissue_load BASE_URL EMAIL PASSWORD WORKERS SECONDS

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, email, password, workers, seconds] = args.as_slice() else {
        eprintln!("usage: reissue_load BASE_URL EMAIL PASSWORD WORKERS SECONDS");
        std::process::exit(2);
    };
    let workers: usize = workers.parse().expect("WORKERS");
    let deadline = Instant::now() + Duration::from_secs(seconds.parse().expect("SECONDS"));
    let client = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u128, u128, u16)>();

    for _ in 0..workers {
        let (client, tx, base) = (client.clone(), tx.clone(), base.clone());
        let login = json!({ "email": email, "password": password });
        tokio::spawn(async move {
            let pair: Value = client
                .post(format!("{base}/auth/login"))
                .json(&login)
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("login body");
            let mut refresh = pair["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned();
            while Instant::now() < deadline {
                let at = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_micros();
                let started = Instant::now();
                let response = client
                    .post(format!("{base}/auth/reissue"))
                    .json(&json!({ "refresh_token": refresh }))
                    .send()
                    .await
                    .expect("reissue");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let _ = tx.send((at, started.elapsed().as_micros(), status));
                match body["refresh_token"].as_str() {
                    Some(next) => refresh = next.to_owned(),
                    None => break,
                }
            }
        });
    }
    drop(tx);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Some((at, micros, status)) = rx.recv().await {
        let _ = writeln!(out, "{at} {micros} {status}");
        let _ = out.flush();
    }
}
