"""The file benchmark's function: append a small string to an object's file.

One script, two ways to run it, and the same IO code in both (`concat`): GET
the current file from a URL, append the argument `append`, PUT the new
version to another URL. Only where the URLs come from differs.

- As a process function of a node (the default): the node POSTs a task; the
  URLs are the task's `mainGetKeys.text` and `mainPutKeys.text` (presigned
  S3 URLs, or the node's own with `--blob-relay`), and the answer reports
  `main.updatedKeys: ["text"]`. Listens on `OPRC_SOCKET` when the node sets
  it, else on `PORT`.
- As plain FaaS (`--faas`, the paper's baseline): an HTTP service that keeps
  each object's file in S3 itself, at `faas/<oid>/text` in `S3_BUCKET` of
  `S3_ENDPOINT`, and presigns its own URLs (SigV4, below) for the same GET
  and PUT. `POST /objects/<oid>/concat?append=...` runs the function; `PUT
  /objects/<oid>` with the bytes sets the file (the benchmark's reset). No
  concurrency control: one client per object.

No third-party dependency: urllib and http.server only.
"""

import datetime
import hashlib
import hmac
import json
import os
import socketserver
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# No proxy from the environment: every byte goes where the URL says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
KEY = "text"


def concat(get_url: str, put_url: str, append: bytes) -> int:
    """Reads the file at `get_url`, writes it with `append` added to
    `put_url`; returns the new size."""
    with _OPENER.open(get_url) as r:
        data = r.read()
    return put(put_url, data + append)


def put(url: str, data: bytes) -> int:
    req = urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with _OPENER.open(req) as r:
        r.read()
    return len(data)


# -- SigV4 query presigning (what boto3's generate_presigned_url does) -----


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _q(s: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(s, safe=safe)


def presign(method: str, endpoint: str, region: str, key_id: str, secret: str, bucket: str,
            key: str, expires: int = 900) -> str:
    """A path-style presigned URL of `bucket/key` (payload unsigned, only
    `host` signed)."""
    split = urllib.parse.urlsplit(endpoint)
    host = split.netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    path = "/" + _q(bucket) + "/" + _q(key, safe="-_.~/")
    params = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
    }
    query = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(params.items()))
    canonical = "\n".join([method, path, query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    k = _hmac(("AWS4" + secret).encode(), day)
    for part in (region, "s3", "aws4_request"):
        k = _hmac(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{split.scheme}://{host}{path}?{query}&X-Amz-Signature={signature}"


class S3:
    """The plain FaaS service's own bucket, from the environment."""

    def __init__(self) -> None:
        self.endpoint = os.environ["S3_ENDPOINT"]
        self.bucket = os.environ["S3_BUCKET"]
        self.region = os.environ.get("S3_REGION", "us-east-1")
        self.key_id = os.environ["AWS_ACCESS_KEY_ID"]
        self.secret = os.environ["AWS_SECRET_ACCESS_KEY"]

    def url(self, method: str, oid: str) -> str:
        return presign(method, self.endpoint, self.region, self.key_id, self.secret,
                       self.bucket, f"faas/{oid}/{KEY}")


# -- HTTP ------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    s3 = None  # set in --faas mode

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def send(self, status: int, value) -> None:
        payload = json.dumps(value, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.send(200, {"status": "ok"})

    def do_POST(self) -> None:
        raw = self.body()
        url = urllib.parse.urlsplit(self.path)
        try:
            if self.s3 is not None:
                parts = url.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "objects" or parts[2] != "concat":
                    return self.send(404, {"error": "POST /objects/<oid>/concat"})
                append = urllib.parse.parse_qs(url.query).get("append", [""])[0]
                oid = parts[1]
                size = concat(self.s3.url("GET", oid), self.s3.url("PUT", oid), append.encode())
                return self.send(200, {"size": size})
            task = json.loads(raw)
            append = task.get("args", {}).get("append", "")
            size = concat(task["mainGetKeys"][KEY], task["mainPutKeys"][KEY], append.encode())
            self.send(200, {"id": task["id"], "success": True,
                            "main": {"updatedKeys": [KEY]}, "body": {"size": size}})
        except Exception as e:  # noqa: BLE001 - every failure is answered
            if self.s3 is not None:
                return self.send(502, {"error": f"{type(e).__name__}: {e}"})
            self.send(200, {"success": False, "errorMsg": f"{type(e).__name__}: {e}"})

    def do_PUT(self) -> None:
        raw = self.body()
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        if self.s3 is None or len(parts) != 2 or parts[0] != "objects":
            return self.send(404, {"error": "PUT /objects/<oid> (plain FaaS only)"})
        try:
            self.send(200, {"size": put(self.s3.url("PUT", parts[1]), raw)})
        except Exception as e:  # noqa: BLE001
            self.send(502, {"error": f"{type(e).__name__}: {e}"})


class TcpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


class UnixHandler(Handler):
    disable_nagle_algorithm = False

    def address_string(self) -> str:
        return "unix"


def watch_parent() -> None:
    """Exits when the node (`OPRC_NODE_PID`) or the benchmark
    (`OPRC_BENCH_PID`) that started this process is gone, so a killed
    parent leaves nothing behind."""
    raw = os.environ.get("OPRC_NODE_PID") or os.environ.get("OPRC_BENCH_PID")
    if not raw or not raw.isdigit():
        return

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(int(raw), 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    if "--faas" in sys.argv:
        Handler.s3 = S3()
    path = os.environ.get("OPRC_SOCKET")
    if path and Handler.s3 is None:
        if os.path.exists(path):
            os.unlink(path)
        server = UnixServer(path, UnixHandler)
    else:
        server = TcpServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler)
    watch_parent()
    print(f"concat: serving on {path or os.environ.get('PORT')}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
