// jose's createRemoteJWKSet + jwtVerify verify authgate's access tokens with
// the JWKS alone (SPEC 7.1), before and after `authgate keys rotate`.
//
// Run with `node --test` by the interop runner against one authgate started
// with AUTHGATE__JWT__ALGORITHM=EdDSA and AUTHGATE__JWT__KEY_PUBLISH_AHEAD_SECS=0;
// it passes AUTHGATE_URL, AUTHGATE_BIN, DATABASE_URL and AUTHGATE_ENV=test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

const BASE = process.env.AUTHGATE_URL.replace(/\/$/, '');
const JWKS_URL = new URL(`${BASE}/.well-known/jwks.json`);
const PASSWORD = 'correct horse battery';
const ISSUER = process.env.AUTHGATE__JWT__ISSUER ?? 'authgate';
const AUDIENCE = process.env.AUTHGATE__JWT__AUDIENCE ?? 'authgate-clients';

async function post(path, body) {
  return fetch(`${BASE}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function newUser() {
  const email = `jose-${randomUUID()}@example.org`;
  const response = await post('/auth/signup', { email, password: PASSWORD });
  const body = await response.text();
  assert.equal(response.status, 201, body);
  return email;
}

async function accessToken(email) {
  const response = await post('/auth/login', { email, password: PASSWORD });
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return JSON.parse(body).access_token;
}

async function publishedAlgorithm() {
  const { keys } = await (await fetch(JWKS_URL)).json();
  assert.ok(keys.length > 0, 'the JWKS is empty: is the server in EdDSA or RS256 mode?');
  return keys[0].alg;
}

// `authgate keys rotate` on the server's database, with the server's
// algorithm and, unless told otherwise, no publication ahead.
async function rotate() {
  const env = {
    AUTHGATE__JWT__ALGORITHM: await publishedAlgorithm(),
    AUTHGATE__JWT__KEY_PUBLISH_AHEAD_SECS: '0',
    ...process.env,
  };
  const stdout = execFileSync(process.env.AUTHGATE_BIN, ['keys', 'rotate'], {
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1, stdout);
  return lines[0];
}

const options = { issuer: ISSUER, audience: AUDIENCE, algorithms: ['EdDSA', 'RS256'] };

test('jose verifies access tokens with the JWKS before and after a key rotation', async () => {
  // A long-lived set, as a resource server keeps one: it fetches the JWKS
  // again when it meets a kid it does not know (no cooldown here).
  const keySet = createRemoteJWKSet(JWKS_URL, { cooldownDuration: 0 });
  const email = await newUser();
  const before = await accessToken(email);
  const { payload } = await jwtVerify(before, keySet, options);
  assert.equal(payload.email, email);
  assert.equal(payload.typ, 'access');
  const oldKid = decodeProtectedHeader(before).kid;

  const newKid = await rotate();

  assert.notEqual(newKid, oldKid);
  // The server hears of the new key by a notification; with no publication
  // ahead it signs with it as soon as it has.
  const deadline = Date.now() + 10_000;
  let after = await accessToken(email);
  while (decodeProtectedHeader(after).kid !== newKid) {
    assert.ok(Date.now() < deadline, 'the new key never signed');
    await new Promise((resolve) => setTimeout(resolve, 100));
    after = await accessToken(email);
  }
  assert.equal((await jwtVerify(after, keySet, options)).payload.email, email);
  const fresh = createRemoteJWKSet(JWKS_URL);
  assert.equal((await jwtVerify(after, fresh, options)).payload.email, email);
  // A token of the old key still verifies: the old key stays published.
  assert.equal((await jwtVerify(before, fresh, options)).payload.email, email);
});

test('jose refuses a token whose signature was altered', async () => {
  const token = await accessToken(await newUser());
  const [head, payload, signature] = token.split('.');
  const last = signature.at(-2) === 'A' ? 'B' : 'A';
  const altered = `${head}.${payload}.${signature.slice(0, -2)}${last}${signature.at(-1)}`;
  await assert.rejects(jwtVerify(altered, createRemoteJWKSet(JWKS_URL), options));
});
