"""PyJWT's PyJWKClient verifies authgate's access tokens with the JWKS alone
(SPEC 7.1), before and after `authgate keys rotate`.

Run by the interop runner against one authgate started with
AUTHGATE__JWT__ALGORITHM=EdDSA and AUTHGATE__JWT__KEY_PUBLISH_AHEAD_SECS=0;
it passes AUTHGATE_URL, AUTHGATE_BIN, DATABASE_URL and AUTHGATE_ENV=test.
"""

import os
import subprocess
import time
import uuid

import jwt
import requests

BASE = os.environ["AUTHGATE_URL"].rstrip("/")
JWKS_URL = f"{BASE}/.well-known/jwks.json"
PASSWORD = "correct horse battery"
ISSUER = os.environ.get("AUTHGATE__JWT__ISSUER", "authgate")
AUDIENCE = os.environ.get("AUTHGATE__JWT__AUDIENCE", "authgate-clients")


def new_user():
    email = f"pyjwt-{uuid.uuid4().hex}@example.org"
    response = requests.post(
        f"{BASE}/auth/signup", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert response.status_code == 201, response.text
    return email


def access_token(email):
    response = requests.post(
        f"{BASE}/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def published_algorithm():
    keys = requests.get(JWKS_URL, timeout=10).json()["keys"]
    assert keys, "the JWKS is empty: is the server in EdDSA or RS256 mode?"
    return keys[0]["alg"]


def rotate():
    """`authgate keys rotate` on the server's database, with the server's
    algorithm and, unless told otherwise, no publication ahead."""
    env = dict(os.environ)
    env.setdefault("AUTHGATE__JWT__ALGORITHM", published_algorithm())
    env.setdefault("AUTHGATE__JWT__KEY_PUBLISH_AHEAD_SECS", "0")
    done = subprocess.run(
        [os.environ["AUTHGATE_BIN"], "keys", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


def verify(token, client=None):
    """Verifies as a resource server does: the JWKS, nothing else of ours."""
    client = client or jwt.PyJWKClient(JWKS_URL, cache_keys=False)
    signing_key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["EdDSA", "RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
    )


def test_the_jwks_is_cacheable_and_lists_public_keys_only():
    response = requests.get(JWKS_URL, timeout=10)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    for key in response.json()["keys"]:
        assert key["use"] == "sig"
        assert key["kid"]
        assert "d" not in key and "p" not in key


def test_pyjwkclient_verifies_access_tokens_before_and_after_a_key_rotation():
    email = new_user()
    before = access_token(email)
    claims = verify(before)
    assert claims["email"] == email
    assert claims["typ"] == "access"
    old_kid = jwt.get_unverified_header(before)["kid"]

    new_kid = rotate()

    assert new_kid != old_kid
    # The server hears of the new key by a notification; with no publication
    # ahead it signs with it as soon as it has.
    deadline = time.monotonic() + 10
    after = access_token(email)
    while jwt.get_unverified_header(after)["kid"] != new_kid:
        assert time.monotonic() < deadline, "the new key never signed"
        time.sleep(0.1)
        after = access_token(email)
    assert verify(after)["email"] == email
    # A token of the old key still verifies: the old key stays published.
    assert verify(before)["email"] == email
    assert requests.get(
        f"{BASE}/auth/me", headers={"Authorization": f"Bearer {before}"}, timeout=10
    ).status_code == 200


def test_a_token_with_an_altered_signature_is_refused_by_pyjwt():
    token = access_token(new_user())
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    try:
        verify(f"{head}.{payload}.{flipped}")
    except jwt.InvalidSignatureError:
        return
    raise AssertionError("an altered signature verified")
