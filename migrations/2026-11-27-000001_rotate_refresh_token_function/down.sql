DROP FUNCTION authgate_rotate_refresh_token(uuid, uuid, timestamptz, bytea, uuid, timestamptz, bytea, text[], timestamptz, timestamptz);
