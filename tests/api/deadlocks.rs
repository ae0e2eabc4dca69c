//! Several sessions are always locked in one order (by id), so logout-all,
//! admin revocation and login eviction, all at once on one user, never
//! deadlock one another (PostgreSQL would abort one with 40P01: a 500).

use reqwest::StatusCode;

use crate::helpers::spawn_app_with;

#[tokio::test(flavor = "multi_thread")]
async fn logout_all_admin_revocation_and_login_eviction_at_once_never_deadlock() {
    let app = spawn_app_with(|s| s.sessions.max_per_user = 3).await;
    let admin = crate::admin::admin(&app).await;
    let email = app.new_user().await;
    let first = app.login_ok(&email).await;
    let user_id = crate::helpers::claims_of(&first.access)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = format!("/admin/users/{user_id}/revoke-sessions");

    for _ in 0..10 {
        let mut pairs = Vec::new();
        for _ in 0..3 {
            pairs.push(app.login_ok(&email).await);
        }
        let mut requests = Vec::new();
        for pair in &pairs {
            requests.push(
                app.client
                    .post(app.url("/auth/logout-all"))
                    .bearer_auth(&pair.access),
            );
        }
        for _ in 0..3 {
            requests.push(app.client.post(app.url(&revoke)).bearer_auth(&admin.access));
            requests.push(
                app.client.post(app.url("/auth/login")).json(
                    &serde_json::json!({"email": email, "password": crate::helpers::PASSWORD}),
                ),
            );
        }
        let responses =
            futures_util::future::join_all(requests.into_iter().map(|r| r.send())).await;
        for response in responses {
            let status = response.expect("an answer").status();
            // A logout-all whose session another request ended first is a
            // 401; everything else succeeds. Never a 5xx.
            assert!(
                [
                    StatusCode::OK,
                    StatusCode::NO_CONTENT,
                    StatusCode::UNAUTHORIZED
                ]
                .contains(&status),
                "{status}"
            );
        }
    }
}
