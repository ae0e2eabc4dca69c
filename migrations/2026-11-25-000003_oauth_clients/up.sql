-- Clients registered by `authgate clients add NAME`, the callers allowed to
-- ask POST /oauth/introspect (RFC 7662) about tokens. The secret is random
-- (32 bytes) and printed once; only its SHA-256 is kept, which a fast hash
-- suits because the secret has full entropy (nothing to guess from a
-- dictionary), unlike a password.
CREATE TABLE oauth_clients (
    client_id   text        PRIMARY KEY CHECK (client_id ~ '^[0-9a-f]{32}$'),
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    secret_hash bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE oauth_clients IS 'OAuth clients allowed to introspect tokens (POST /oauth/introspect with HTTP Basic). Managed with `authgate clients add|list|remove`; delete a row to revoke a client.';
COMMENT ON COLUMN oauth_clients.client_id IS 'The client_id (16 random bytes in hex), the user name of HTTP Basic.';
COMMENT ON COLUMN oauth_clients.name IS 'What the operator called the client at `authgate clients add NAME`.';
COMMENT ON COLUMN oauth_clients.secret_hash IS 'SHA-256 of the client_secret (32 random bytes in hex, printed once at creation); never the secret. Compared in constant time.';
COMMENT ON COLUMN oauth_clients.created_at IS 'When the client was registered.';
