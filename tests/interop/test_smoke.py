"""Signup, login, /auth/me and reissue through `requests` and PyJWT, as a
Python client of authgate would use them."""

import uuid

import jwt


def test_signup_answers_201_with_the_trimmed_email_and_409_the_second_time(base_url, http):
    email = f"Smoke-{uuid.uuid4().hex}@Example.org"
    credentials = {"email": f"  {email} ", "password": "correct horse battery"}

    response = http.post(f"{base_url}/auth/signup", json=credentials, timeout=10)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "email"}
    assert body["email"] == email
    uuid.UUID(body["id"])

    credentials["email"] = email.lower()
    again = http.post(f"{base_url}/auth/signup", json=credentials, timeout=10)
    assert again.status_code == 409
    assert again.json()["error"] == "email_taken"


def test_login_returns_a_token_pair_whose_access_token_pyjwt_decodes(base_url, http, account):
    response = http.post(
        f"{base_url}/auth/login",
        json={"email": account["email"].upper(), "password": account["password"]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    pair = response.json()
    assert set(pair) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
        "session_id",
    }
    assert pair["token_type"] == "Bearer"

    header = jwt.get_unverified_header(pair["access_token"])
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert header["alg"] not in ("none", "")
    assert claims["typ"] == "access"
    assert claims["sub"] == account["id"]
    assert claims["sid"] == pair["session_id"]
    assert isinstance(claims["roles"], list)
    assert claims["exp"] - claims["iat"] == pair["expires_in"]
    refresh = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    assert refresh["typ"] == "refresh"
    assert refresh["sid"] == pair["session_id"]


def test_me_answers_the_caller_of_the_access_token(base_url, http, account, login):
    pair = login(account)
    response = http.get(
        f"{base_url}/auth/me",
        headers={"Authorization": f"Bearer {pair['access_token']}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    me = response.json()
    assert me == {
        "id": account["id"],
        "email": account["email"],
        "session_id": pair["session_id"],
        "roles": [],
    }


def test_me_without_a_token_is_401_with_a_bearer_challenge(base_url, http):
    response = http.get(f"{base_url}/auth/me", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "invalid_token"


def test_reissue_rotates_and_a_spent_refresh_token_is_refused(base_url, http, account, login):
    pair = login(account)

    first = http.post(f"{base_url}/auth/reissue", json={"refresh_token": pair["refresh_token"]}, timeout=10)
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["session_id"] == pair["session_id"]
    assert rotated["refresh_token"] != pair["refresh_token"]

    # The server of scripts/interop.sh runs with no reuse grace: a spent
    # token coming back is theft, and the whole session ends.
    again = http.post(f"{base_url}/auth/reissue", json={"refresh_token": pair["refresh_token"]}, timeout=10)
    assert again.status_code == 401
    assert again.json()["error"] == "token_reused"
    assert again.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    after = http.post(f"{base_url}/auth/reissue", json={"refresh_token": rotated["refresh_token"]}, timeout=10)
    assert after.status_code == 401
    assert after.json()["error"] == "session_revoked"
