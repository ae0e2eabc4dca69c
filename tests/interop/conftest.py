"""Shared by the stock-client tests: scripts/interop.sh starts one authgate
server and exports

- AUTHGATE_URL: its base URL (http://127.0.0.1:PORT),
- AUTHGATE_BIN: the absolute path of the binary (for `authgate admin grant`,
  `keys rotate`, `clients add` with the same database),
- DATABASE_URL: the server's database,
- AUTHGATE_ENV=test.

Tests share that server, so each one signs up its own accounts.
"""

import os
import uuid

import pytest
import requests

PASSWORD = "correct horse battery"


def _url():
    url = os.environ.get("AUTHGATE_URL")
    if not url:
        raise RuntimeError("AUTHGATE_URL is unset: run these tests through scripts/interop.sh")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def base_url():
    return _url()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def account(base_url, http):
    """A fresh account: {"id", "email", "password"}."""
    email = f"interop-{uuid.uuid4().hex}@example.org"
    response = http.post(f"{base_url}/auth/signup", json={"email": email, "password": PASSWORD}, timeout=10)
    assert response.status_code == 201, response.text
    return {**response.json(), "password": PASSWORD}


@pytest.fixture
def login(base_url, http):
    """login(account) -> the token pair of a new session."""

    def login(account):
        response = http.post(
            f"{base_url}/auth/login",
            json={"email": account["email"], "password": account["password"]},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    return login
