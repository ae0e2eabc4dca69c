# shellcheck shell=bash
# Helpers to run a private PgBouncer in transaction pooling mode in front of
# a cluster of scripts/pg.sh: sourced by scripts/test.sh (after pg.sh, whose
# pg_log, pg_as and pg_os_user they use). PgBouncer refuses to run as root,
# so as root it runs as the cluster's unprivileged OS user.

# Installs Debian's pgbouncer when it is missing.
pgb_ensure_installed() {
  if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    pg_log "installing PgBouncer (Debian package pgbouncer)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  fi
  command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] \
    || { pg_log "pgbouncer not found"; return 1; }
}

pgb_bin() { command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer; }

# pgb_start DIR PORT PG_PORT [PG_HOST [USER]]: PgBouncer on 127.0.0.1:PORT in
# transaction pooling mode, every database name routed to the PostgreSQL on
# PG_HOST:PG_PORT (default 127.0.0.1; so that the tests' per-test databases
# route), USER (default postgres) let in without a password (it listens on
# loopback only), its ini, log and pid file in DIR.
pgb_start() {
  local dir=$1 port=$2 pg_port=$3 pg_host=${4:-127.0.0.1} user=${5:-postgres}
  mkdir -p "$dir"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$pg_host port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
; per-test databases come and go: drop their pools soon after
autodb_idle_timeout = 30
server_idle_timeout = 30
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  printf '"%s" ""\n' "$user" >"$dir/userlist.txt"
  if [ "$(id -u)" = 0 ]; then chown -R "$(pg_os_user)" "$dir"; fi
  pg_as "$(pgb_bin)" -d -q "$dir/pgbouncer.ini" \
    || { tail -n 20 "$dir/pgbouncer.log" >&2 2>/dev/null; return 1; }
  local _
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  pg_log "pgbouncer did not listen on 127.0.0.1:$port"
  tail -n 20 "$dir/pgbouncer.log" >&2 2>/dev/null
  return 1
}

# pgb_stop DIR: stops the PgBouncer whose pid file is in DIR (TERM, then
# KILL after 10 s); nothing when none runs.
pgb_stop() {
  local pidfile=$1/pgbouncer.pid pid _
  [ -f "$pidfile" ] || return 0
  pid=$(head -n1 "$pidfile")
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
