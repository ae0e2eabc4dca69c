-- Accounts. The email is kept as the user typed it (trimmed); uniqueness and
-- look-ups go through email_canonical, its Unicode lower case computed by the
-- server (not by PostgreSQL's lower(), which folds only ASCII under the C
-- locale), so "Ann@X.io" and "ann@x.io" are one user on any cluster.
CREATE TABLE users (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email           text        NOT NULL CHECK (octet_length(email) BETWEEN 3 AND 254),
    email_canonical text        NOT NULL,
    password_hash   text        NOT NULL,
    roles           text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_canonical_key ON users (email_canonical);

COMMENT ON TABLE users IS 'One row per account. Passwords are bcrypt hashes; no secret is stored in clear.';
COMMENT ON COLUMN users.id IS 'User id; the sub claim of every token issued to this user.';
COMMENT ON COLUMN users.email IS 'Email as entered at signup, trimmed; shown back to the user.';
COMMENT ON COLUMN users.email_canonical IS 'The email in Unicode lower case: what logins and admin grant look up, unique (users_email_canonical_key).';
COMMENT ON COLUMN users.password_hash IS 'bcrypt hash ($2b$, cost from password.bcrypt_cost) of the password; never the password.';
COMMENT ON COLUMN users.roles IS 'Roles copied into the roles claim at login and reissue; ''admin'' is granted only by `authgate admin grant`.';
COMMENT ON COLUMN users.created_at IS 'When the account was created (signup).';
COMMENT ON COLUMN users.updated_at IS 'When the row last changed (password or roles).';
