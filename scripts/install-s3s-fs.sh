#!/usr/bin/env bash
# Installs s3s-fs, the S3 server over a directory that oprc-blob's S3 tests
# run against (it checks SigV4 fully, so presigned URLs are really tested).
# Does nothing when s3s-fs is already on PATH or in ~/.cargo/bin. 0.14.1
# is the last version that builds on our Rust 1.95 (0.15 needs 1.96); the
# build takes about 3 minutes on 2 cores, so CI should cache ~/.cargo/bin.
set -euo pipefail

VERSION=0.14.1
say() { printf '==> %s\n' "$*" >&2; }

cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if found="$(command -v s3s-fs 2>/dev/null)"; then
  say "s3s-fs is installed: $found"
  exit 0
fi
if [ -x "$cargo_bin/s3s-fs" ] || [ -x "$HOME/.cargo/bin/s3s-fs" ]; then
  say "s3s-fs is installed in $cargo_bin (not on PATH; the tests look there too)"
  exit 0
fi
if ! command -v cargo >/dev/null 2>&1; then
  say "cargo is needed to install s3s-fs (install the Rust toolchain first)"
  exit 1
fi
say "installing s3s-fs $VERSION with cargo (about 3 minutes)"
cargo install "s3s-fs@$VERSION" --features binary --locked
say "installed $cargo_bin/s3s-fs"
