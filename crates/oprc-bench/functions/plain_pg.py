"""The plain-FaaS baseline of `oprc-bench pg` (issue 8): the JSON update
`fill` of examples/record/record.py as an HTTP service that keeps each
object's JSON in PostgreSQL itself, as a function without a platform would.

`fill` replaces an object's data with `n` random pairs (keys 10 characters,
values 40, distinct keys; `n` from 0 to 100 000, default 10: the same code
and limits as record.py's). One call is one transaction on a pooled
connection:

    BEGIN
    SELECT data FROM objects WHERE id = $1 FOR UPDATE
    UPDATE objects SET data = $2 WHERE id = $1
    COMMIT

The table is `objects (id text PRIMARY KEY, data jsonb NOT NULL)`, made at
start when missing. Endpoints:

- `POST /objects/<id>/fill?n=10`: the function; answers `{"size": n}`, 404
  when the object does not exist, 400 for a bad `n`, 500 (with the error)
  when the transaction fails.
- `PUT /objects/<id>` with a JSON object: creates or replaces the row (the
  benchmark's set-up).
- `GET /healthz`.

Served the way the Python SDK serves a node's worker: the standard
library's `ThreadingHTTPServer` (a thread per connection, HTTP/1.1
keep-alive, `TCP_NODELAY`), here in `WORKERS` processes (default 2) that
share one listening socket, made by the parent before it forks (the
pre-fork model of gunicorn): whichever worker is free first accepts a new
connection. Each worker owns a pool of `POOL_SIZE` connections (default
32, psycopg_pool). The parent only forks and waits; a worker exits when
the parent is gone (a pipe), so killing the parent stops everything.

Environment: `DATABASE_URL` (required), `HOST`, `PORT`, `WORKERS`,
`POOL_SIZE`. Needs `pip install "psycopg[binary]" psycopg-pool`.
"""

import json
import os
import random
import string
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

# -- the function (as examples/record/record.py) ---------------------------

KEY_SIZE = 10
VALUE_SIZE = 40
MAX_PAIRS = 100_000
ALPHABET = string.ascii_letters + string.digits

_rng = random.Random()


class BadRequest(Exception):
    pass


class NotFound(Exception):
    pass


def random_pairs(n: int) -> Dict[str, str]:
    """`n` pairs of random alphanumeric strings (distinct keys)."""
    pairs: Dict[str, str] = {}
    while len(pairs) < n:
        key = "".join(_rng.choices(ALPHABET, k=KEY_SIZE))
        pairs[key] = "".join(_rng.choices(ALPHABET, k=VALUE_SIZE))
    return pairs


def pair_count(query: Dict[str, Any]) -> int:
    raw = query.get("n", ["10"])[0]
    try:
        n = int(raw)
    except ValueError:
        raise BadRequest(f"argument 'n' must be an integer, got {raw!r}") from None
    if not 0 <= n <= MAX_PAIRS:
        raise BadRequest(f"argument 'n' must be between 0 and {MAX_PAIRS}, got {n}")
    return n


SELECT = "SELECT data FROM objects WHERE id = %s FOR UPDATE"
UPDATE = "UPDATE objects SET data = %s WHERE id = %s"
UPSERT = (
    "INSERT INTO objects (id, data) VALUES (%s, %s) "
    "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data"
)
SCHEMA = "CREATE TABLE IF NOT EXISTS objects (id text PRIMARY KEY, data jsonb NOT NULL)"


def fill(pool: ConnectionPool, oid: str, n: int) -> int:
    """Replaces object `oid`'s data with `n` random pairs, in one
    transaction holding the row's lock."""
    with pool.connection() as conn, conn.transaction():
        row = conn.execute(SELECT, (oid,)).fetchone()
        if row is None:
            raise NotFound(f"no object {oid}")
        if not isinstance(row[0], dict):
            raise BadRequest(f"data of object {oid} is not a JSON object")
        conn.execute(UPDATE, (Jsonb(random_pairs(n)), oid))
    return n


# -- HTTP ------------------------------------------------------------------


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True
    pool: ConnectionPool


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/healthz":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        body_len = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(body_len)
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "objects" or parts[2] != "fill":
            self._send(404, {"error": "not found"})
            return
        try:
            n = pair_count(urllib.parse.parse_qs(query))
            self._send(200, {"size": fill(self.server.pool, parts[1], n)})
        except BadRequest as e:
            self._send(400, {"error": str(e)})
        except NotFound as e:
            self._send(404, {"error": str(e)})
        except Exception as e:  # a failed transaction: the caller sees it
            self._send(500, {"error": f"{type(e).__name__}: {e}"})

    def do_PUT(self) -> None:
        data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        parts = self.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "objects" or not isinstance(data, dict):
            self._send(400, {"error": "PUT /objects/<id> with a JSON object"})
            return
        with self.server.pool.connection() as conn, conn.transaction():
            conn.execute(UPSERT, (parts[1], Jsonb(data)))
        self._send(200, {"id": parts[1]})

    def _send(self, status: int, value: Any) -> None:
        payload = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(server: Server, url: str, pool_size: int, parent_alive: int) -> None:
    """One worker process on the shared `server` socket: exits when
    `parent_alive` (a pipe's read end) reaches its end, i.e. when the
    parent is gone."""

    def watch() -> None:
        os.read(parent_alive, 1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    pool = ConnectionPool(
        url,
        min_size=pool_size,
        max_size=pool_size,
        kwargs={"autocommit": True, "application_name": "plain-faas"},
        open=True,
    )
    pool.wait()
    server.pool = pool
    server.serve_forever()


def main() -> None:
    url = os.environ["DATABASE_URL"]
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    workers = int(os.environ.get("WORKERS", "2"))
    pool_size = int(os.environ.get("POOL_SIZE", "32"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    server = Server((host, port), Handler)
    read_end, write_end = os.pipe()
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            os.close(write_end)
            try:
                serve(server, url, pool_size, read_end)
            finally:
                os._exit(1)
        children.append(pid)
    os.close(read_end)
    print(f"plain_pg: {workers} workers on {host}:{port}", file=sys.stderr, flush=True)
    # The write end stays open until this process ends.
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
