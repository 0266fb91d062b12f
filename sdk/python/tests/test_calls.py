"""Calls to other objects against a local HTTP server that plays the node."""

import json
import socket
import threading
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

import oprc


class Seen:
    """The requests the server got, in order."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        #: Set to let a held request ("hang") answer.
        self.release = threading.Event()


def invocation(status: str, **extra: Any) -> Dict[str, Any]:
    return {"invId": "inv-9", "status": status, **extra}


class Node(BaseHTTPRequestHandler):
    """Answers by the called function's name (the path's last segment)."""

    protocol_version = "HTTP/1.1"
    seen: Seen

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        raw_path, _, raw_query = self.path.partition("?")
        with self.seen.lock:
            self.seen.requests.append(
                {
                    "path": raw_path,
                    "query": urllib.parse.parse_qs(raw_query, keep_blank_values=True),
                    "raw_query": raw_query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
        fn = urllib.parse.unquote(raw_path.rsplit("/", 1)[-1])
        if fn == "hang":
            # Holds the request until the test is done with it, then hangs up.
            self.seen.release.wait(10)
            self.close_connection = True
            return None
        if fn == "queued":
            return self._send(202, invocation("QUEUE"))
        if fn == "failed":
            error = {"code": "function_failed", "message": "count must stay positive"}
            return self._send(422, invocation("FAILED", error=error))
        if fn == "private":
            return self._send(403, {"error": {"code": "forbidden", "message": "binding p.c.private is PRIVATE"}})
        if fn == "reentrant":
            message = "object p.c/o1 is held by this call chain"
            return self._send(409, {"error": {"code": "reentrant_call", "message": message}})
        if fn == "broken":
            return self._send_raw(502, b"<html><body>Bad Gateway</body></html>", "text/html")
        echo = body.decode() if body else None
        return self._send(200, invocation("SUCCEEDED", body={"echo": echo}))

    def _send(self, status: int, answer: Any) -> None:
        self._send_raw(status, json.dumps(answer).encode(), "application/json")

    def _send_raw(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CallsTest(unittest.TestCase):
    seen: Seen
    server: ThreadingHTTPServer
    base: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.seen = Seen()
        handler = type("H", (Node,), {"seen": cls.seen})
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        cls.server.daemon_threads = True
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.seen.release.set()
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self) -> None:
        with self.seen.lock:
            self.seen.requests.clear()
        self.seen.release.clear()

    def ctx(self, call_url: Optional[str] = "", token: Optional[str] = "tok-1") -> oprc.Context:
        task: Dict[str, Any] = {"id": "T1", "funcKey": "p.f", "fbName": "f", "ts": 1}
        if call_url is not None:
            task["callUrl"] = call_url or self.base
        if token is not None:
            task["callToken"] = token
        raw = json.dumps(task)
        return oprc.Context(json.loads(raw), json.loads(raw))

    def requests(self) -> List[Dict[str, Any]]:
        with self.seen.lock:
            return list(self.seen.requests)

    def failure(self, fn: Any) -> oprc.CallError:
        with self.assertRaises(oprc.CallError) as caught:
            fn()
        return caught.exception

    def test_object_call_encodes_path_and_args_and_sends_the_token(self) -> None:
        ctx = self.ctx()
        answer = ctx.invoke("p.c", "a b/c?", "inc", {"by": 2, "on": True, "off": False, "s": "x y&z=é", "n": None})
        self.assertEqual(answer, invocation("SUCCEEDED", body={"echo": None}))
        (req,) = self.requests()
        self.assertEqual(req["path"], "/api/classes/p.c/objects/a%20b%2Fc%3F/invokes/inc")
        self.assertEqual(req["query"], {"by": ["2"], "on": ["true"], "off": ["false"], "s": ["x y&z=é"]})
        self.assertEqual(req["raw_query"], "by=2&on=true&off=false&s=x%20y%26z%3D%C3%A9")
        headers = req["headers"]
        self.assertEqual(headers["authorization"], "Bearer tok-1")
        self.assertEqual(headers["idempotency-key"], "T1/1")
        self.assertEqual(headers["accept"], "application/json")
        self.assertEqual(headers["content-length"], "0")
        self.assertNotIn("content-type", headers)
        self.assertEqual(req["body"], b"")

    def test_class_call_sends_a_json_body(self) -> None:
        ctx = self.ctx()
        body = {"id": "n1", "data": {"count": 0, "name": "é"}}
        answer = ctx.invoke_class("p.c", "new", body=body)
        (req,) = self.requests()
        self.assertEqual(req["path"], "/api/classes/p.c/invokes/new")
        self.assertEqual(req["query"], {})
        self.assertEqual(req["headers"]["content-type"], "application/json")
        self.assertEqual(json.loads(req["body"]), body)
        self.assertEqual(json.loads(answer["body"]["echo"]), body)

    def test_keys_count_the_task_calls_in_order_failed_ones_included(self) -> None:
        ctx = self.ctx()
        ctx.invoke("p.c", "o1", "a")
        ctx.invoke_class("p.c", "new", body={})
        self.failure(lambda: ctx.invoke("p.c", "o1", "private"))
        ctx.invoke("p.c", "o2", "b", async_=True)
        keys = [r["headers"]["idempotency-key"] for r in self.requests()]
        self.assertEqual(keys, ["T1/1", "T1/2", "T1/3", "T1/4"])
        # A replay of the task (a new context for the same task) makes the
        # same keys again.
        replay = self.ctx()
        replay.invoke("p.c", "o1", "a")
        self.assertEqual(self.requests()[-1]["headers"]["idempotency-key"], "T1/1")

    def test_async_call_answers_the_queued_invocation(self) -> None:
        ctx = self.ctx()
        answer = ctx.invoke("p.c", "o1", "queued", {"k": "v"}, async_=True)
        self.assertEqual(answer, invocation("QUEUE"))
        (req,) = self.requests()
        self.assertEqual(req["query"], {"k": ["v"], "_async": ["true"]})

    def test_failed_invocation_raises_with_its_error(self) -> None:
        e = self.failure(lambda: self.ctx().invoke("p.c", "o1", "failed"))
        self.assertIsInstance(e, oprc.TaskError)
        self.assertEqual((e.code, e.message, e.status), ("function_failed", "count must stay positive", 422))
        self.assertEqual(e.answer["status"], "FAILED")
        self.assertEqual(
            str(e), "call of 'failed' on p.c object 'o1' failed: function_failed (HTTP 422): count must stay positive"
        )

    def test_refused_call_raises_with_the_error_code(self) -> None:
        e = self.failure(lambda: self.ctx().invoke("p.c", "o1", "private"))
        self.assertEqual((e.code, e.status), ("forbidden", 403))
        self.assertEqual(e.message, "binding p.c.private is PRIVATE")
        self.assertEqual(e.answer, {"error": {"code": "forbidden", "message": "binding p.c.private is PRIVATE"}})
        e = self.failure(lambda: self.ctx().invoke_class("p.c", "reentrant"))
        self.assertEqual((e.code, e.status), ("reentrant_call", 409))

    def test_non_json_answer_is_a_bad_answer(self) -> None:
        e = self.failure(lambda: self.ctx().invoke("p.c", "o1", "broken"))
        self.assertEqual((e.code, e.status, e.answer), ("BAD_ANSWER", 502, None))
        self.assertIn("<html><body>Bad Gateway</body></html>", e.message)

    def test_unreachable_node(self) -> None:
        ctx = self.ctx(call_url=f"http://127.0.0.1:{free_port()}")
        e = self.failure(lambda: ctx.invoke("p.c", "o1", "a"))
        self.assertEqual((e.code, e.status, e.answer), ("UNREACHABLE", None, None))
        self.assertIn("cannot reach the node at http://127.0.0.1:", e.message)
        self.assertNotIn("tok-1", str(e))

    def test_no_answer_within_the_timeout(self) -> None:
        ctx = self.ctx()
        try:
            e = self.failure(lambda: ctx.invoke("p.c", "o1", "hang", timeout=0.2))
        finally:
            self.seen.release.set()
        self.assertEqual((e.code, e.status), ("TIMEOUT", None))
        self.assertEqual(e.message, "no answer from the node within 0.2 s")

    def test_a_task_without_call_url_cannot_call(self) -> None:
        for ctx in (self.ctx(call_url=None, token=None), self.ctx(token=None), self.ctx(call_url=None)):
            self.assertFalse(ctx.can_invoke)
            e = self.failure(lambda: ctx.invoke("p.c", "o1", "a"))
            self.assertEqual((e.code, e.status), ("NO_CALL_URL", None))
            self.assertIn("the node did not give this task a way to call other objects", e.message)
        self.assertTrue(self.ctx().can_invoke)
        self.assertEqual(self.requests(), [])

    def test_underscore_args_are_refused(self) -> None:
        e = self.failure(lambda: self.ctx().invoke("p.c", "o1", "a", {"_showAll": "true"}))
        self.assertEqual(e.code, "BAD_ARG")
        self.assertEqual(self.requests(), [])

    def test_call_url_with_a_path_prefix_and_trailing_slash(self) -> None:
        ctx = self.ctx(call_url=self.base + "/node/")
        ctx.invoke("p.c", "o1", "a")
        self.assertEqual(self.requests()[0]["path"], "/node/api/classes/p.c/objects/o1/invokes/a")

    def test_uncaught_call_error_fails_the_task(self) -> None:
        app = oprc.App()

        @app.function("f")
        def f(ctx: oprc.Context) -> Any:
            ctx.main.data["touched"] = True
            return ctx.invoke("p.c", "o2", "private")

        task = {
            "id": "T1",
            "funcKey": "p.f",
            "fbName": "f",
            "ts": 1,
            "callUrl": self.base,
            "callToken": "tok-1",
            "main": {"_meta": {"id": "o1", "cls": "p.c", "revision": 1}, "data": {}},
        }
        status, raw = app.handle(json.dumps(task).encode())
        self.assertEqual(status, 200)
        completion: Dict[str, Any] = json.loads(raw)
        expected: Tuple[Any, ...] = (
            False,
            "call of 'private' on p.c object 'o2' failed: forbidden (HTTP 403): binding p.c.private is PRIVATE",
        )
        self.assertEqual((completion["success"], completion["errorMsg"]), expected)
        self.assertNotIn("main", completion)


if __name__ == "__main__":
    unittest.main()
