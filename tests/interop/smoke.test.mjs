// Signup, login, /auth/me and reissue through fetch and jose, as a
// JavaScript client of authgate would use them. Run by scripts/interop.sh
// (node --test) against the server it starts: AUTHGATE_URL is its base URL.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { decodeJwt, decodeProtectedHeader } from "jose";

const URL = process.env.AUTHGATE_URL?.replace(/\/$/, "");
if (!URL) throw new Error("AUTHGATE_URL is unset: run these tests through scripts/interop.sh");

const PASSWORD = "correct horse battery";

async function post(path, body, headers = {}) {
  return fetch(`${URL}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

async function newAccount() {
  const email = `interop-js-${randomUUID()}@example.org`;
  const response = await post("/auth/signup", { email, password: PASSWORD });
  assert.equal(response.status, 201, await response.clone().text());
  return { ...(await response.json()), password: PASSWORD };
}

async function login(account) {
  const response = await post("/auth/login", { email: account.email, password: PASSWORD });
  assert.equal(response.status, 200, await response.clone().text());
  assert.equal(response.headers.get("cache-control"), "no-store");
  return response.json();
}

test("login returns a token pair whose tokens jose decodes", async () => {
  const account = await newAccount();
  const pair = await login(account);

  assert.equal(pair.token_type, "Bearer");
  assert.notEqual(decodeProtectedHeader(pair.access_token).alg, "none");
  const access = decodeJwt(pair.access_token);
  assert.equal(access.typ, "access");
  assert.equal(access.sub, account.id);
  assert.equal(access.sid, pair.session_id);
  assert.ok(Array.isArray(access.roles));
  assert.equal(access.exp - access.iat, pair.expires_in);
  const refresh = decodeJwt(pair.refresh_token);
  assert.equal(refresh.typ, "refresh");
  assert.equal(refresh.sid, pair.session_id);
});

test("/auth/me answers the caller of the access token", async () => {
  const account = await newAccount();
  const pair = await login(account);

  const response = await fetch(`${URL}/auth/me`, {
    headers: { authorization: `Bearer ${pair.access_token}` },
  });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), {
    id: account.id,
    email: account.email,
    session_id: pair.session_id,
    roles: [],
  });
});

test("a wrong password is 401 invalid_credentials", async () => {
  const account = await newAccount();
  const response = await post("/auth/login", { email: account.email, password: "wrong password" });
  assert.equal(response.status, 401);
  assert.equal((await response.json()).error, "invalid_credentials");
});

test("reissue rotates, and the spent refresh token ends the session", async () => {
  const account = await newAccount();
  const pair = await login(account);

  const first = await post("/auth/reissue", { refresh_token: pair.refresh_token });
  assert.equal(first.status, 200);
  const rotated = await first.json();
  assert.equal(rotated.session_id, pair.session_id);
  assert.notEqual(rotated.refresh_token, pair.refresh_token);
  assert.equal(decodeJwt(rotated.access_token).sid, pair.session_id);

  // No reuse grace on the server of scripts/interop.sh: theft is assumed.
  const again = await post("/auth/reissue", { refresh_token: pair.refresh_token });
  assert.equal(again.status, 401);
  assert.equal((await again.json()).error, "token_reused");
  assert.match(again.headers.get("www-authenticate"), /^Bearer error="invalid_token"/);

  const me = await fetch(`${URL}/auth/me`, {
    headers: { authorization: `Bearer ${rotated.access_token}` },
  });
  // The revocation reaches this instance's set within a second (SPEC 4.5);
  // here it is the instance that revoked, so at once.
  assert.equal(me.status, 401);
  assert.equal((await me.json()).error, "session_revoked");
});
