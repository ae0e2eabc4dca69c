COMMENT ON COLUMN active_sessions.ip IS 'Peer address of the login.';
COMMENT ON COLUMN sessions.ip IS 'Peer address of the login request.';
DROP FUNCTION authgate_reserve_login(bytea[], integer[], double precision, timestamptz);
DROP TABLE login_failures;
