# A tiny task function for the engine tests. Listens on 127.0.0.1:$PORT, or
# on the Unix socket $OPRC_SOCKET when FN_TRANSPORT=unix, and answers every
# POST with a completion echoing the task. Task `args` steer it: sleep
# (seconds), status (http status to answer), exit (die mid-call). With
# TERM_MARK set, SIGTERM writes "term <pid>" there and exits.
import json
import os
import signal
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UNIX = os.environ.get("FN_TRANSPORT") == "unix"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        task = json.loads(self.rfile.read(length) or b"{}")
        args = task.get("args") or {}
        if "sleep" in args:
            time.sleep(float(args["sleep"]))
        if args.get("exit"):
            os._exit(7)
        code = int(args.get("status", 200))
        answer = {
            "id": task.get("id"),
            "success": code == 200,
            "body": {
                "echo": task,
                "pid": os.getpid(),
                "contentType": self.headers.get("content-type"),
                "traceparent": self.headers.get("traceparent"),
                "greeting": os.environ.get("GREETING"),
                "transport": "unix" if UNIX else "tcp",
                "socket": os.environ.get("OPRC_SOCKET"),
                "port": os.environ.get("PORT"),
            },
        }
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def on_term(signum, frame):
    with open(os.environ["TERM_MARK"], "w") as f:
        f.write(f"term {os.getpid()}")
    os._exit(0)


if __name__ == "__main__":
    if os.environ.get("TERM_MARK"):
        signal.signal(signal.SIGTERM, on_term)
    if UNIX:
        server = UnixServer(os.environ["OPRC_SOCKET"], Handler)
        print(f"listening on {os.environ['OPRC_SOCKET']}", flush=True)
    else:
        port = int(os.environ["PORT"])
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        print(f"listening on {port}", flush=True)
    server.serve_forever()
