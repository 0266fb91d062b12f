"""End-to-end tests: a real server on a free port, tasks POSTed over HTTP."""

import asyncio
import contextlib
import http.client
import io
import json
import unittest
from typing import Any, Dict, Optional, Tuple

import oprc


def make_app() -> oprc.App:
    app = oprc.App()

    @app.function("increment")
    def increment(ctx: oprc.Context) -> Any:
        n = ctx.int_arg("by", 1)
        ctx.main.data["count"] = ctx.main.data.get("count", 0) + n
        return {"count": ctx.main.data["count"]}

    @app.function("get")
    def get(ctx: oprc.Context) -> Any:
        return ctx.main.data.get("count", 0)

    @app.function("fail")
    def fail(ctx: oprc.Context) -> Any:
        ctx.main.data["count"] = -1
        raise oprc.TaskError("count must stay positive")

    @app.function("crash")
    def crash(ctx: oprc.Context) -> Any:
        empty: Dict[str, Any] = {}
        return empty["missing"]

    @app.function("copy")
    def copy(ctx: oprc.Context) -> Any:
        assert ctx.output is not None
        ctx.output.data = {"from": ctx.main.id, **ctx.main.data}
        return None

    @app.function("upload")
    def upload(ctx: oprc.Context) -> Any:
        url = ctx.main.put_url("image")
        ctx.update_main_key("image")
        return {"url": url}

    @app.function("echo")
    async def echo(ctx: oprc.Context) -> Any:
        await asyncio.sleep(0)
        return {"body": ctx.body, "args": ctx.args, "fb": ctx.fb_name, "immutable": ctx.immutable}

    @app.function("example.dog-speak")
    def dog_speak(ctx: oprc.Context) -> Any:
        return "woof"

    @app.function("not-json")
    def not_json(ctx: oprc.Context) -> Any:
        return {1, 2}

    return app


def task(fb: str, data: Optional[Dict[str, Any]] = None, **extra: Any) -> Dict[str, Any]:
    t: Dict[str, Any] = {
        "id": "inv-1",
        "funcKey": f"example.{fb}",
        "fbName": fb,
        "args": {},
        "immutable": False,
        "ts": 1700000000000,
        "mainGetKeys": {},
        "mainPutKeys": {},
        "outputKeys": {},
    }
    if data is not None:
        t["main"] = {
            "_meta": {"id": "o1", "cls": "example.counter", "revision": 3, "verIds": {}, "refs": {}, "lastOffset": 0},
            "data": data,
        }
    t.update(extra)
    return t


class ServerTest(unittest.TestCase):
    server: oprc.RunningServer

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = make_app().start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def request(self, method: str, path: str, body: Optional[bytes] = None) -> Tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw)
        finally:
            conn.close()

    def post(self, t: Any) -> Tuple[int, Any]:
        return self.request("POST", "/", json.dumps(t).encode())

    def test_success_changes_data_and_returns_body(self) -> None:
        status, c = self.post(task("increment", {"count": 1, "other": "x"}, args={"by": "5"}))
        self.assertEqual(status, 200)
        self.assertEqual(
            c, {"id": "inv-1", "success": True, "main": {"data": {"count": 6, "other": "x"}}, "body": {"count": 6}}
        )

    def test_read_only_call_sends_no_main(self) -> None:
        status, c = self.post(task("get", {"count": 4}))
        self.assertEqual(status, 200)
        self.assertEqual(c, {"id": "inv-1", "success": True, "body": 4})
        self.assertNotIn("main", c)

    def test_task_error_fails_with_message(self) -> None:
        status, c = self.post(task("fail", {"count": 1}))
        self.assertEqual(status, 200)
        self.assertEqual(c, {"id": "inv-1", "success": False, "errorMsg": "count must stay positive"})

    def test_exception_fails_with_type_and_message(self) -> None:
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            status, c = self.post(task("crash", {}))
        self.assertIn("Traceback", stderr.getvalue())
        self.assertEqual(status, 200)
        self.assertFalse(c["success"])
        self.assertEqual(c["errorMsg"], "KeyError: 'missing'")
        self.assertNotIn("main", c)

    def test_output_object_is_written(self) -> None:
        t = task("copy", {"a": 1}, immutable=True)
        t["output"] = {"_meta": {"id": "o2", "cls": "example.counter", "revision": 0}, "data": {}}
        status, c = self.post(t)
        self.assertEqual(status, 200)
        self.assertEqual(c, {"id": "inv-1", "success": True, "output": {"data": {"from": "o1", "a": 1}}})

    def test_updated_keys_are_reported_without_data(self) -> None:
        t = task("upload", {"a": 1}, mainPutKeys={"image": "http://blob/put"})
        status, c = self.post(t)
        self.assertEqual(status, 200)
        self.assertEqual(c["main"], {"updatedKeys": ["image"]})
        self.assertEqual(c["body"], {"url": "http://blob/put"})

    def test_missing_put_url_fails_clearly(self) -> None:
        _, c = self.post(task("upload", {}))
        self.assertFalse(c["success"])
        self.assertIn("no upload URL for file key 'image'", c["errorMsg"])

    def test_async_handler_gets_body_and_args(self) -> None:
        t = task("echo", None, reqBody={"x": [1, 2]}, args={"k": "v"}, immutable=True)
        status, c = self.post(t)
        self.assertEqual(status, 200)
        self.assertEqual(c["body"], {"body": {"x": [1, 2]}, "args": {"k": "v"}, "fb": "echo", "immutable": True})

    def test_missing_main_fails_clearly(self) -> None:
        _, c = self.post(task("get", None))
        self.assertFalse(c["success"])
        self.assertIn("has no main object", c["errorMsg"])

    def test_dispatch_by_function_key(self) -> None:
        t = task("speak", {})
        t["funcKey"] = "example.dog-speak"
        _, c = self.post(t)
        self.assertEqual(c, {"id": "inv-1", "success": True, "body": "woof"})

    def test_unknown_function_fails_with_clear_message(self) -> None:
        status, c = self.post(task("nope", {}))
        self.assertEqual(status, 200)
        self.assertFalse(c["success"])
        self.assertIn("no handler for function 'example.nope' (binding 'nope')", c["errorMsg"])
        self.assertIn("increment", c["errorMsg"])

    def test_unserializable_result_fails(self) -> None:
        _, c = self.post(task("not-json", {}))
        self.assertFalse(c["success"])
        self.assertIn("not JSON serializable", c["errorMsg"])

    def test_malformed_json_is_400(self) -> None:
        status, c = self.request("POST", "/", b"{not json")
        self.assertEqual(status, 400)
        self.assertFalse(c["success"])
        self.assertIn("malformed task", c["errorMsg"])

    def test_deeply_nested_json_is_400_and_the_worker_lives_on(self) -> None:
        deep = b"[" * 100_000 + b"]" * 100_000
        status, c = self.request("POST", "/", deep)
        self.assertEqual(status, 400)
        self.assertIn("malformed task", c["errorMsg"])
        status, _ = self.request("GET", "/healthz", b"")
        self.assertEqual(status, 200)

    def test_non_task_json_is_400(self) -> None:
        for body in (b"null", b"[1]", b'{"fbName": "get"}', b'{"id": "i", "fbName": "get", "main": 3}'):
            with self.subTest(body=body):
                status, c = self.request("POST", "/", body)
                self.assertEqual(status, 400)
                self.assertIn("malformed task", c["errorMsg"])

    def test_healthz(self) -> None:
        status, c = self.request("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(c, {"status": "ok"})

    def test_keep_alive_serves_several_tasks_on_one_connection(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            for i in range(3):
                conn.request("POST", "/", body=json.dumps(task("increment", {"count": i})).encode())
                resp = conn.getresponse()
                self.assertEqual(json.loads(resp.read())["body"], {"count": i + 1})
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()
