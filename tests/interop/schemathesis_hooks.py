"""schemathesis' credentials for the operations that take a bearer token.

Each token is that of a fresh account, signed up and given the admin role
(through `authgate admin grant`, as an operator would), so that the admin
operation is tried past its 403. A fresh account each time, because
schemathesis learns the emails it sees and tries them at login with wrong
passwords: a fixed account would soon be rate limited (429), and so would
every token fetched for it. A token is fetched again whenever an operation
answers 401 (a test ended its session: logout, logout-all, ...).
"""

import os
import subprocess
import uuid

import requests
import schemathesis

URL = os.environ["AUTHGATE_URL"]


@schemathesis.auth()
class FreshAdminAccount:
    def get(self, case, context):
        email = f"schemathesis-{uuid.uuid4().hex}@example.org"
        password = f"schemathesis {uuid.uuid4().hex}"
        credentials = {"email": email, "password": password}
        requests.post(f"{URL}/auth/signup", json=credentials, timeout=10).raise_for_status()
        subprocess.run(
            [os.environ["AUTHGATE_BIN"], "admin", "grant", email],
            check=True,
            capture_output=True,
            timeout=30,
        )
        login = requests.post(f"{URL}/auth/login", json=credentials, timeout=10)
        login.raise_for_status()
        return login.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
