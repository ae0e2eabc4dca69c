DROP VIEW active_sessions;
DROP INDEX sessions_expires_at_idx;
DROP INDEX refresh_tokens_revoked_at_idx;
