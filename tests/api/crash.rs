//! SPEC 6: a server killed with SIGKILL in the middle of rotations loses no
//! session. With a grace window, each client's last refresh token works on
//! the next instance, whether or not its last rotation was committed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{spawn_app_with, start, Pair};

/// Starts `authgate serve` as its own process on the app's database and
/// returns it with its base URL.
fn serve(db_url: &str) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("AUTHGATE_ENV", "test")
        .env("DATABASE_URL", db_url)
        .env("AUTHGATE__SERVER__BIND", "127.0.0.1:0")
        .env("AUTHGATE__SESSIONS__REUSE_GRACE_SECS", "30")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authgate serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(address) = line.split("listening on ").nth(1) {
                    tx.send(address.trim().to_owned()).unwrap();
                    sent = true;
                }
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("authgate serve listens");
    (child, format!("http://{address}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_sigkill_mid_rotation_every_clients_last_refresh_token_works_on_a_new_instance() {
    let app = spawn_app_with(|s| s.sessions.reuse_grace_secs = 30).await;
    let (mut server, base) = tokio::task::block_in_place(|| serve(&app.db_url));
    let client = reqwest::Client::new();
    let mut chains = Vec::new();
    for _ in 0..8 {
        let email = app.new_user().await;
        let response = client
            .post(format!("{base}/auth/login"))
            .json(&serde_json::json!({"email": email, "password": crate::helpers::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        chains.push(Pair::from_json(response.json().await.unwrap()).refresh);
    }

    // Eight clients rotate their chains as fast as they can; each keeps the
    // last refresh token it received.
    let rotations = Arc::new(AtomicUsize::new(0));
    let clients = chains.into_iter().map(|mut last| {
        let (client, base, rotations) = (client.clone(), base.clone(), rotations.clone());
        tokio::spawn(async move {
            for _ in 0..10_000 {
                let sent = client
                    .post(format!("{base}/auth/reissue"))
                    .json(&serde_json::json!({ "refresh_token": last }))
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                let Ok(json) = response.json::<serde_json::Value>().await else {
                    break;
                };
                let Some(next) = json["refresh_token"].as_str() else {
                    panic!("a rotation was refused before the crash: {json}");
                };
                last = next.to_owned();
                rotations.fetch_add(1, Ordering::Relaxed);
            }
            last
        })
    });
    let clients: Vec<_> = clients.collect();
    while rotations.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    let mut last_tokens = Vec::new();
    for client in clients {
        last_tokens.push(client.await.unwrap());
    }

    let next = start(app.settings.clone()).await;
    for last in last_tokens {
        let response = next.reissue(&last).await;
        assert_eq!(response.status(), StatusCode::OK, "a session was lost");
        let pair = Pair::from_json(response.json().await.unwrap());
        next.reissue_ok(&pair.refresh).await;
    }
}
