"""A stock OAuth 2.0 client (authlib) against authgate's /oauth/* (SPEC 7.2).

Run by the interop runner against one authgate server, with AUTHGATE_URL
(its base URL), AUTHGATE_BIN (the binary, for `authgate clients add`),
DATABASE_URL (the server's database) and AUTHGATE_ENV=test. Self-contained:
each test signs up its own account, and needs nothing from conftest.py.
"""

import os
import subprocess
import uuid

import requests
from authlib.integrations.requests_client import OAuth2Session

PASSWORD = "correct horse battery"
TIMEOUT = 10


def base_url():
    url = os.environ.get("AUTHGATE_URL")
    if not url:
        raise RuntimeError("AUTHGATE_URL is unset: run these tests through the interop runner")
    return url.rstrip("/")


def logged_in():
    """Signs a new account up and logs it in over plain HTTP: (email, token pair)."""
    base = base_url()
    email = f"oauth-{uuid.uuid4().hex}@example.org"
    credentials = {"email": email, "password": PASSWORD}
    response = requests.post(f"{base}/auth/signup", json=credentials, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    response = requests.post(f"{base}/auth/login", json=credentials, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return email, response.json()


def me(access_token):
    return requests.get(
        f"{base_url()}/auth/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    )


def public_client(token):
    """A public client (no secret): how an app refreshes its tokens."""
    return OAuth2Session(
        client_id="interop-app",
        token=token,
        token_endpoint=f"{base_url()}/oauth/token",
        token_endpoint_auth_method="none",
    )


def registered_client():
    """A client made by `authgate clients add`, as an operator would make it."""
    output = subprocess.run(
        [os.environ["AUTHGATE_BIN"], "clients", "add", f"interop {uuid.uuid4().hex[:8]}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    fields = dict(line.split("=", 1) for line in output.stdout.splitlines())
    assert set(fields) == {"client_id", "client_secret"}, output.stdout
    return OAuth2Session(
        client_id=fields["client_id"],
        client_secret=fields["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
    )


def test_metadata_names_the_endpoints_authlib_uses():
    response = requests.get(f"{base_url()}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["grant_types_supported"] == ["refresh_token"]
    for member, path in [
        ("token_endpoint", "/oauth/token"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ]:
        assert metadata[member].startswith("http"), metadata
        assert metadata[member].endswith(path), metadata


def test_authlib_refreshes_then_revokes_the_refresh_token():
    _, token = logged_in()
    client = public_client(token)

    refreshed = client.refresh_token(f"{base_url()}/oauth/token", refresh_token=token["refresh_token"])

    assert refreshed["token_type"] == "Bearer"
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["session_id"] == token["session_id"]
    assert me(refreshed["access_token"]).status_code == 200

    revoked = client.revoke_token(
        f"{base_url()}/oauth/revoke",
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )

    assert revoked.status_code == 200
    assert revoked.content == b""
    answer = me(refreshed["access_token"])
    assert answer.status_code == 401
    assert answer.json()["error"] == "session_revoked"


def test_a_spent_refresh_token_is_invalid_grant_for_authlib():
    _, token = logged_in()
    client = public_client(token)
    client.refresh_token(f"{base_url()}/oauth/token", refresh_token=token["refresh_token"])

    try:
        client.refresh_token(f"{base_url()}/oauth/token", refresh_token=token["refresh_token"])
    except Exception as error:  # authlib's OAuthError
        assert getattr(error, "error", None) == "invalid_grant", error
    else:
        raise AssertionError("a spent refresh token was accepted")


def test_introspection_with_client_credentials_before_and_after_logout():
    email, token = logged_in()
    client = registered_client()
    url = f"{base_url()}/oauth/introspect"

    before = client.introspect_token(url, token=token["access_token"], token_type_hint="access_token")

    assert before.status_code == 200, before.text
    answer = before.json()
    assert answer["active"] is True
    assert answer["token_type"] == "access_token"
    assert answer["username"] == email
    assert answer["sid"] == token["session_id"]
    refresh = client.introspect_token(url, token=token["refresh_token"]).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"

    logout = requests.post(
        f"{base_url()}/auth/logout",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=TIMEOUT,
    )
    assert logout.status_code == 204

    for kind in ["access_token", "refresh_token"]:
        after = client.introspect_token(url, token=token[kind])
        assert after.status_code == 200
        assert after.json() == {"active": False}


def test_introspection_without_credentials_is_invalid_client():
    _, token = logged_in()
    response = requests.post(
        f"{base_url()}/oauth/introspect",
        data={"token": token["access_token"]},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
