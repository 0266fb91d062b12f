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

say "python sdk tests"
PYTHONPATH=sdk/python python3 -m unittest discover -s sdk/python/tests

say "rust workspace tests"
cargo test --workspace --locked --no-fail-fast
