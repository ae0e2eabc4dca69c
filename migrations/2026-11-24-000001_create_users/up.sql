-- Accounts. The email is kept as the user typed it (trimmed); uniqueness and
-- look-ups go through lower(email), so "Ann@X.io" and "ann@x.io" are one user.
CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text        NOT NULL,
    roles         text[]      NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

COMMENT ON TABLE users IS 'One row per account. Passwords are bcrypt hashes; no secret is stored in clear.';
COMMENT ON COLUMN users.id IS 'User id; the sub claim of every token issued to this user.';
COMMENT ON COLUMN users.email IS 'Email as entered at signup, trimmed. Unique case-insensitively (index users_email_lower_key on lower(email)).';
COMMENT ON COLUMN users.password_hash IS 'bcrypt hash ($2b$, cost from password.bcrypt_cost) of the password; never the password.';
COMMENT ON COLUMN users.roles IS 'Roles copied into the roles claim at login and reissue; ''admin'' is granted only by `authgate admin grant`.';
COMMENT ON COLUMN users.created_at IS 'When the account was created (signup).';
COMMENT ON COLUMN users.updated_at IS 'When the row last changed (password or roles).';
