# shellcheck shell=bash
# Helpers to run a private PostgreSQL 15 cluster with the system's initdb and
# pg_ctl: sourced by scripts/serve.sh and scripts/test.sh. As root, the
# cluster runs as the unprivileged `postgres` user (initdb refuses root).

pg_log() { printf 'authgate: %s\n' "$*" >&2; }

# Installs PostgreSQL 15 from Debian's packages when it is missing (the
# machine image has it; a bare one may not).
pg_ensure_installed() {
  if pg_bindir >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    pg_log "installing PostgreSQL 15 (Debian packages postgresql-15, libpq-dev)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 libpq-dev >/dev/null
  fi
  pg_bindir >/dev/null || { pg_log "PostgreSQL 15 server binaries not found"; return 1; }
}

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null)"; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

# The OS user that owns and runs the cluster.
pg_os_user() {
  if [ "$(id -u)" != 0 ]; then id -un; return; fi
  if ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  echo postgres
}

# Runs a command as the cluster's OS user.
pg_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$(pg_os_user)" -- "$@"; else "$@"; fi
}

# A TCP port on 127.0.0.1 that nothing listens on.
pg_free_port() {
  local port tries=0
  while [ $tries -lt 50 ]; do
    port=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
    tries=$((tries + 1))
  done
  return 1
}

# pg_start DATADIR PORT [extra postgres -c options...]: initialises the
# cluster when DATADIR is empty, then starts it listening on 127.0.0.1:PORT
# with its socket inside DATADIR. Superuser `postgres`, trust auth on
# loopback only.
pg_start() {
  local data=$1 port=$2; shift 2
  local bin; bin=$(pg_bindir)
  mkdir -p "$data"
  if [ "$(id -u)" = 0 ]; then chown "$(pg_os_user)" "$data"; fi
  chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    pg_as "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$data.initdb.log" 2>&1 \
      || { cat "$data.initdb.log" >&2; return 1; }
  fi
  local opts="-c listen_addresses=127.0.0.1 -p $port -k $data"
  local o; for o in "$@"; do opts="$opts -c $o"; done
  pg_as "$bin/pg_ctl" -D "$data" -o "$opts" -l "$data/server.log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$data/server.log" >&2; return 1; }
}

pg_running() {
  [ -f "$1/postmaster.pid" ] && pg_as "$(pg_bindir)/pg_ctl" -D "$1" status >/dev/null 2>&1
}

pg_stop() {
  local data=$1
  if pg_running "$data"; then
    pg_as "$(pg_bindir)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
  fi
}
