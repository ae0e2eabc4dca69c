"""schemathesis' credentials for the operations that take them.

Bearer (every operation but introspection): each token is that of a fresh
account, signed up and given the admin role (through `authgate admin grant`,
as an operator would), so that the admin operation is tried past its 403. A
fresh account each time, because schemathesis learns the emails it sees and
tries them at login with wrong passwords: a fixed account would soon be rate
limited (429), and so would every token fetched for it. A token is fetched
again whenever an operation answers 401 (a test ended its session: logout,
logout-all, revocation, ...).

HTTP Basic (POST /oauth/introspect): a client registered with `authgate
clients add`, so that introspection is tried past its 401.
"""

import base64
import os
import subprocess
import uuid

import requests
import schemathesis

URL = os.environ["AUTHGATE_URL"]
INTROSPECT = "/oauth/introspect"


def authgate(*args):
    """Runs a subcommand of the server's binary on the server's database."""
    return subprocess.run(
        [os.environ["AUTHGATE_BIN"], *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


@schemathesis.auth().skip_for(path=INTROSPECT)
class FreshAdminAccount:
    def get(self, case, context):
        email = f"schemathesis-{uuid.uuid4().hex}@example.org"
        password = f"schemathesis {uuid.uuid4().hex}"
        credentials = {"email": email, "password": password}
        requests.post(f"{URL}/auth/signup", json=credentials, timeout=10).raise_for_status()
        authgate("admin", "grant", email)
        login = requests.post(f"{URL}/auth/login", json=credentials, timeout=10)
        login.raise_for_status()
        return login.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.auth().apply_to(path=INTROSPECT)
class RegisteredClient:
    def get(self, case, context):
        printed = dict(
            line.split("=", 1) for line in authgate("clients", "add", "schemathesis").splitlines() if "=" in line
        )
        pair = f"{printed['client_id']}:{printed['client_secret']}"
        return base64.b64encode(pair.encode()).decode()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Basic {data}"
