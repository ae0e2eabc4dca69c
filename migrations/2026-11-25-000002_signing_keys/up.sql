-- Signing keys of the asymmetric modes (SPEC 7.1, jwt.algorithm = EdDSA or
-- RS256). Every instance signs with the same key because the keys live here;
-- a dump of this table alone cannot sign, because the private parts are
-- encrypted under a key that only the instances' jwt.secret yields.
CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    alg         text        NOT NULL CHECK (alg IN ('EdDSA', 'RS256')),
    public_jwk  jsonb       NOT NULL,
    private_key bytea       NOT NULL,
    nonce       bytea       NOT NULL CHECK (octet_length(nonce) = 12),
    created_at  timestamptz NOT NULL,
    signs_from  timestamptz NOT NULL,
    signs_until timestamptz,
    CHECK (signs_until IS NULL OR signs_until >= signs_from)
);

-- The instances load one algorithm's keys in signing order.
CREATE INDEX signing_keys_alg_signs_from_idx ON signing_keys (alg, signs_from);

COMMENT ON TABLE signing_keys IS 'Keys that sign access and refresh tokens when jwt.algorithm is EdDSA or RS256, one row per key. A key is published in /.well-known/jwks.json from its creation (jwt.key_publish_ahead_secs before it signs) until every token it signed has expired; the active key is the newest whose signs_from has passed. Made by the first start in such a mode, every jwt.key_rotation_secs (by one instance, under an advisory lock) and by `authgate keys rotate`. Unused in HS256 mode.';
COMMENT ON COLUMN signing_keys.kid IS 'Key id, the kid of the tokens'' header and of the JWKS: the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.';
COMMENT ON COLUMN signing_keys.alg IS 'JOSE algorithm: EdDSA (Ed25519) or RS256 (RSA 2048, PKCS#1 v1.5, SHA-256). Only the keys of the configured jwt.algorithm sign or verify.';
COMMENT ON COLUMN signing_keys.public_jwk IS 'The public key as the RFC 7517 JWK served in the JWKS (kty, crv and x, or n and e; kid, alg, use).';
COMMENT ON COLUMN signing_keys.private_key IS 'The private key (PKCS#8 DER for Ed25519, PKCS#1 DER for RSA) encrypted with AES-256-GCM under a key derived from jwt.secret by HKDF-SHA256; the associated data is kid and alg, so a row''s ciphertext cannot be moved to another row. Useless without jwt.secret.';
COMMENT ON COLUMN signing_keys.nonce IS 'The 12-byte AES-GCM nonce of private_key, random per key.';
COMMENT ON COLUMN signing_keys.created_at IS 'When the key was made (and published).';
COMMENT ON COLUMN signing_keys.signs_from IS 'When the key starts signing: created_at + jwt.key_publish_ahead_secs, or created_at for a key made because none could sign.';
COMMENT ON COLUMN signing_keys.signs_until IS 'When the next key takes over (that key''s signs_from); NULL for the newest key. The key stays published until this plus the longest token lifetime.';
