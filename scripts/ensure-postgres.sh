#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable for the tests and prints, on
# stdout, the line to export:
#   OPRC_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT/postgres
# The machine's server at 127.0.0.1:5432 is used when it answers. Otherwise
# (or with --throwaway, e.g. for fault tests that must never touch the
# machine's shared server) PostgreSQL is installed when missing and a
# throwaway cluster (trust auth, user postgres) is started on a free port
# in a temp dir owned by postgres; how to stop it goes to stderr.
#
# Usage: eval "$(scripts/ensure-postgres.sh)" && export OPRC_TEST_POSTGRES
set -euo pipefail

host=127.0.0.1
throwaway=false
[[ "${1:-}" == "--throwaway" ]] && throwaway=true

log() { echo "ensure-postgres: $*" >&2; }

reachable() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$host" -p "$1"
  else
    (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
  fi
}

if ! $throwaway && reachable 5432; then
  echo "OPRC_TEST_POSTGRES=postgres://postgres@$host:5432/postgres"
  exit 0
fi

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin=$(bindir)
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    log "PostgreSQL is not installed and installing it needs root (apt-get install -y postgresql)"
    exit 1
  fi
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bin=$(bindir)
fi

# A free port: nothing answers on it.
port=55432
while (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
  port=$((port + 1))
done

dir=$(mktemp -d /tmp/oprc-postgres.XXXXXX)
as_postgres=()
if [[ $(id -u) -eq 0 ]]; then
  # initdb refuses to run as root; the cluster belongs to postgres.
  chown postgres:postgres "$dir"
  as_postgres=(runuser -u postgres --)
fi
"${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync \
  >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
"${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=$host" start >&2 \
  || { cat "$dir/server.log" >&2; exit 1; }
log "started a throwaway cluster in $dir on port $port; stop it with:"
log "  ${as_postgres[*]} $bin/pg_ctl -D $dir/data stop -m fast && rm -rf $dir"
echo "OPRC_TEST_POSTGRES=postgres://postgres@$host:$port/postgres"
