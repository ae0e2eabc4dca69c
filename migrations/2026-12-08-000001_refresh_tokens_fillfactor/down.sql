-- Partitions made as migration 2026-11-26-000002 made them (fillfactor 100).
CREATE OR REPLACE FUNCTION authgate_attach_refresh_token_partition(p_lower timestamptz, p_upper timestamptz)
RETURNS regclass
LANGUAGE plpgsql
AS $$
DECLARE
    utc  timestamp := p_lower AT TIME ZONE 'UTC';
    name text := 'refresh_tokens_p'
                 || to_char(utc, CASE WHEN utc::time = '00:00' THEN 'YYYYMMDD' ELSE 'YYYYMMDD"_"HH24MISS' END);
    n    integer := 1;
BEGIN
    WHILE to_regclass(quote_ident(name)) IS NOT NULL LOOP
        n := n + 1;
        name := regexp_replace(name, '_v[0-9]+$', '') || '_v' || n;
    END LOOP;
    EXECUTE format('CREATE TABLE %I (LIKE refresh_tokens INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS)', name);
    EXECUTE format('ALTER TABLE refresh_tokens ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, p_lower, p_upper);
    EXECUTE format('COMMENT ON TABLE %I IS %L', name, format(
        'Partition of refresh_tokens: the rows whose expires_at is in [%s, %s) UTC. Made ahead by authgate; the sweeper detaches and drops it whole once that range has ended and no access token issued with its rows can be alive.',
        to_char(p_lower AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
        to_char(p_upper AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')));
    RETURN name::regclass;
END;
$$;

DO $$
DECLARE p regclass;
BEGIN
    FOR p IN SELECT partition FROM authgate_refresh_token_partitions() LOOP
        EXECUTE format('ALTER TABLE %s RESET (fillfactor)', p);
    END LOOP;
END
$$;
