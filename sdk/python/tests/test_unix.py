"""The SDK on a Unix socket: the node's process engine sets OPRC_SOCKET."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Any, Tuple

import oprc

SDK = os.path.join(os.path.dirname(__file__), "..")
SCRIPT = "import oprc\napp = oprc.App()\napp.add('f', lambda ctx: {'n': 1})\napp.run()\n"
TASK = {"id": "t1", "funcKey": "example.f", "fbName": "f", "args": {}}


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def post(conn: http.client.HTTPConnection, body: Any) -> Tuple[int, Any]:
    conn.request("POST", "/", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def wait_for_socket(path: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(path)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class UnixServerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "w.sock")

    def tearDown(self) -> None:
        self.dir.cleanup()

    def test_tasks_are_served_with_keep_alive(self) -> None:
        app = oprc.App()
        app.add("f", lambda ctx: {"n": ctx.int_arg("n", 0) + 1})
        with app.start_unix(self.path) as server:
            self.assertEqual(server.path, self.path)
            with self.assertRaises(AttributeError):
                server.port
            conn = UnixConnection(self.path)
            try:
                for i in range(3):
                    status, c = post(conn, dict(TASK, args={"n": str(i)}))
                    self.assertEqual((status, c), (200, {"id": "t1", "success": True, "body": {"n": i + 1}}))
                conn.request("GET", "/healthz")
                self.assertEqual(conn.getresponse().status, 200)
            finally:
                conn.close()
        self.assertFalse(os.path.exists(self.path), "the socket is removed at stop")

    def test_a_stale_socket_is_replaced_but_no_other_file(self) -> None:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.path)
        stale.close()
        app = oprc.App()
        app.add("f", lambda ctx: None)
        app.start_unix(self.path).stop()

        with open(self.path, "w") as f:
            f.write("not a socket")
        with self.assertRaises(OSError):
            app.start_unix(self.path)
        with open(self.path) as f:
            self.assertEqual(f.read(), "not a socket")

    def test_run_listens_on_oprc_socket_instead_of_port(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=SDK, OPRC_SOCKET=self.path, PORT=str(port), HOST="127.0.0.1")
        worker = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stderr=subprocess.PIPE)
        try:
            wait_for_socket(self.path)
            conn = UnixConnection(self.path)
            try:
                self.assertEqual(post(conn, TASK), (200, {"id": "t1", "success": True, "body": {"n": 1}}))
            finally:
                conn.close()
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            worker.send_signal(signal.SIGTERM)
            self.assertEqual(worker.wait(timeout=10), 0)
            self.assertFalse(os.path.exists(self.path), "the socket is removed at exit")
            self.assertIn(f"on unix:{self.path}", worker.stderr.read().decode())
        finally:
            worker.kill()
            worker.wait()
            worker.stderr.close()


if __name__ == "__main__":
    unittest.main()
