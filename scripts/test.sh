#!/usr/bin/env bash
# The whole test suite: Rust workspace (unit, integration, conformance and
# end-to-end tests against real nodes and real function processes) and the
# Python SDK's tests. Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

# Function processes in the tests and examples are Python 3.
if ! command -v python3 >/dev/null 2>&1; then
  say "installing python3"
  apt-get update -qq && apt-get install -y -qq python3 >/dev/null
fi

# The compatibility test runs a function written with the original Oparaca's
# Python SDK (PyPI: oaas-sdk-py, which brings aiohttp).
if ! python3 -c "import oaas_sdk_py, aiohttp" >/dev/null 2>&1; then
  say "installing oaas-sdk-py (compatibility test)"
  python3 -m pip --version >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null; }
  python3 -m pip install --quiet --disable-pip-version-check oaas-sdk-py
fi

# The S3 backend's tests (and the node's file tests on S3) run against a
# real S3 server, s3s-fs; the tests fail without it.
scripts/install-s3s-fs.sh

# The PostgreSQL backend's conformance tests run against a real server:
# the machine's, or a throwaway one started here; they fail without one.
pg_env="$(scripts/ensure-postgres.sh)"
export "${pg_env?}"
say "postgresql for the tests: ${OPRC_TEST_POSTGRES}"

# The JetStream log's tests, likewise, against a NATS server with
# JetStream; the engine fault tests start nats-servers of their own from
# the binary it names.
while read -r line; do export "${line?}"; done < <(scripts/ensure-nats.sh)
say "nats for the tests: ${OPRC_TEST_NATS} (binary ${OPRC_NATS_SERVER_BIN})"

say "python sdk tests"
PYTHONPATH=sdk/python python3 -m unittest discover -s sdk/python/tests

say "rust workspace tests"
cargo test --workspace --locked --no-fail-fast

# The end-to-end suites once more, on PostgreSQL and JetStream: each test
# node gets a database and a stream of its own, removed afterwards.
say "end-to-end suites on postgresql + jetstream"
cargo run --locked --quiet -p oprc-testenv --bin oprc-test-cleanup
shared_status=0
OPRC_TEST_BACKENDS=shared cargo test --locked --no-fail-fast -p oprc-server -p oprc --test it \
  || shared_status=$?
cargo run --locked --quiet -p oprc-testenv --bin oprc-test-cleanup
if [ "$shared_status" -ne 0 ]; then
  say "the end-to-end suites failed on postgresql + jetstream"
  exit "$shared_status"
fi

# API fuzzing: schemathesis generates requests from the node's OpenAPI
# document (valid and invalid ones) and runs all its default checks (no
# 5xx, every status and body as documented, invalid input refused, valid
# input accepted). The node refuses process functions, so generated
# packages cannot run commands. 100 examples per operation (about 1.5
# minutes on 2 cores); OPRC_FUZZ_EXAMPLES and OPRC_FUZZ_SEED change that.
say "api fuzzing (schemathesis)"
cargo build --locked -p oprc
root="$PWD"
target="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
venv="$target/schemathesis"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  say "installing schemathesis into $venv"
  python3 -m venv "$venv" >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv" && python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
fi
fuzz_dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$target/debug/oprc" serve --listen "127.0.0.1:$port" --data-dir "$fuzz_dir/data" \
  --no-process-functions 2> "$fuzz_dir/node.log" &
node_pid=$!
trap 'kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; rm -rf "$fuzz_dir"' EXIT
python3 - "$port" <<'PY'
import sys, time, urllib.request
deadline = time.time() + 60
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2)
        break
    except Exception:
        if time.time() > deadline:
            sys.exit("the node did not become ready")
        time.sleep(0.2)
PY
fuzz_status=0
# Run from the temporary directory: schemathesis keeps its example
# databases in the working directory.
(cd "$fuzz_dir" && "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" \
  run "http://127.0.0.1:$port/api/openapi.json" \
  --header "Authorization: Bearer $(cat "$fuzz_dir/data/admin-token")" \
  --max-examples "${OPRC_FUZZ_EXAMPLES:-100}" --seed "${OPRC_FUZZ_SEED:-1}" \
  --generation-database none --no-color) || fuzz_status=$?
if ! kill -0 "$node_pid" 2>/dev/null || grep -q "panicked" "$fuzz_dir/node.log"; then
  say "the node crashed under fuzzing; its log:"
  cat "$fuzz_dir/node.log" >&2
  exit 1
fi
if [ "$fuzz_status" -ne 0 ]; then
  say "schemathesis found problems (exit $fuzz_status)"
  exit "$fuzz_status"
fi
