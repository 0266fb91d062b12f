"""File helpers against a local HTTP server that plays the presigned URLs."""

import io
import json
import os
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

import oprc


class Blobs:
    """What the server holds and what it saw."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.puts: List[Tuple[str, Dict[str, str], bytes]] = []
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    blobs: Blobs

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _name(self) -> str:
        return self.path.split("?", 1)[0].rsplit("/", 1)[-1]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        name = self._name()
        if name == "short":
            # Announces more than it sends, then hangs up.
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            self.close_connection = True
            return
        body = self.blobs.files.get(name)
        if body is None:
            self._error(404, b"<Error><Code>NoSuchKey</Code></Error>")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:  # noqa: N802
        name = self._name()
        length = int(self.headers.get("Content-Length", "-1"))
        body = self.rfile.read(length) if length >= 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.blobs.lock:
            self.blobs.puts.append((self.path, headers, body))
        if name == "denied":
            self._error(403, b'<?xml version="1.0"?>\n<Error><Code>SignatureDoesNotMatch</Code></Error>')
            return
        with self.blobs.lock:
            self.blobs.files[name] = body
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _error(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def pattern(n: int) -> bytes:
    return bytes((i * 31 + i // 4096) % 256 for i in range(n))


class FilesTest(unittest.TestCase):
    blobs: Blobs
    server: ThreadingHTTPServer
    base: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.blobs = Blobs()
        handler = type("H", (Handler,), {"blobs": cls.blobs})
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        cls.server.daemon_threads = True
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.shutdown()
        cls.server.server_close()

    def url(self, name: str) -> str:
        return f"{self.base}/blobs/{name}?sig=s3cret"

    def ctx(self, get: Dict[str, str], put: Dict[str, str], output: Optional[Dict[str, str]] = None) -> oprc.Context:
        task: Dict[str, Any] = {
            "id": "i",
            "funcKey": "p.f",
            "fbName": "f",
            "ts": 1,
            "main": {"_meta": {"id": "o", "cls": "p.c", "revision": 2}, "data": {}},
            "mainGetKeys": {k: self.url(v) for k, v in get.items()},
            "mainPutKeys": {k: self.url(v) for k, v in put.items()},
        }
        if output:
            task["output"] = {"_meta": {"id": "out", "cls": "p.c", "revision": 0}, "data": {}}
            task["outputKeys"] = {k: self.url(v) for k, v in output.items()}
        raw = json.dumps(task)
        return oprc.Context(json.loads(raw), json.loads(raw))

    def last_put(self) -> Tuple[str, Dict[str, str], bytes]:
        with self.blobs.lock:
            return self.blobs.puts[-1]

    def test_open_file_streams_chunks_and_read_file_reads_whole(self) -> None:
        big = pattern(3 << 20)
        self.blobs.files["big"] = big
        ctx = self.ctx({"video": "big"}, {})
        with ctx.main.open_file("video") as f:
            self.assertEqual(f.length, len(big))
            first = f.read(10)
            rest = b"".join(f.chunks(1 << 16))
        self.assertEqual(first + rest, big)
        self.assertEqual(ctx.read_file("video"), big)
        self.assertNotIn("main", ctx.completion())

    def test_files_of_referenced_objects_are_ref_dot_key(self) -> None:
        self.blobs.files["avatar"] = b"face"
        ctx = self.ctx({"img": "img", "owner.avatar": "avatar"}, {})
        self.assertEqual(ctx.main.file_keys, ["img", "owner.avatar"])
        self.assertEqual(ctx.open_file("owner.avatar").read(), b"face")

    def test_a_key_without_url_names_the_keys_there_are(self) -> None:
        ctx = self.ctx({"img": "img", "owner.avatar": "avatar"}, {"img": "img"})
        with self.assertRaises(oprc.TaskError) as e:
            ctx.read_file("video")
        self.assertEqual(
            str(e.exception),
            "no download URL for file key 'video' of object o (no version yet, or not accessible "
            "to this function); readable keys: img, owner.avatar",
        )
        with self.assertRaises(oprc.TaskError) as e:
            ctx.write_file("video", b"x")
        self.assertEqual(str(e.exception), "no upload URL for file key 'video' of object o; writable keys: img")
        empty = self.ctx({}, {})
        with self.assertRaisesRegex(oprc.TaskError, "readable keys: none$"):
            empty.open_file("img")

    def test_download_file_replaces_the_file_whole(self) -> None:
        self.blobs.files["doc"] = pattern(200_000)
        ctx = self.ctx({"doc": "doc"}, {})
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "doc.bin")
            with open(path, "wb") as f:
                f.write(b"old")
            self.assertEqual(ctx.download_file("doc", path), 200_000)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), pattern(200_000))
            self.assertEqual(os.listdir(d), ["doc.bin"])

    def test_a_download_that_breaks_off_leaves_no_file(self) -> None:
        ctx = self.ctx({"doc": "short"}, {})
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(oprc.TaskError) as e:
                ctx.download_file("doc", os.path.join(d, "doc.bin"))
            self.assertIn("broke off after 1000 of 100000 bytes", str(e.exception))
            self.assertNotIn("s3cret", str(e.exception))
            self.assertEqual(os.listdir(d), [])
        with self.assertRaisesRegex(oprc.TaskError, "broke off"):
            ctx.read_file("doc")

    def test_error_answers_show_status_and_excerpt(self) -> None:
        ctx = self.ctx({"doc": "gone"}, {"img": "denied"})
        with self.assertRaises(oprc.TaskError) as e:
            ctx.read_file("doc")
        self.assertEqual(
            str(e.exception),
            f"download of file 'doc': {self.base}/blobs/gone answered HTTP 404 Not Found: "
            "<Error><Code>NoSuchKey</Code></Error>",
        )
        with self.assertRaises(oprc.TaskError) as e:
            ctx.write_file("img", b"bytes")
        self.assertEqual(
            str(e.exception),
            f"upload of file 'img': {self.base}/blobs/denied answered HTTP 403 Forbidden: "
            '<?xml version="1.0"?> <Error><Code>SignatureDoesNotMatch</Code></Error>',
        )
        # A failed upload is not reported as updated.
        self.assertNotIn("main", ctx.completion())

    def test_write_file_puts_with_content_length_then_records_the_key(self) -> None:
        ctx = self.ctx({}, {"img": "w-bytes"})
        self.assertEqual(ctx.write_file("img", b"png bytes"), 9)
        path, headers, body = self.last_put()
        self.assertEqual(path, "/blobs/w-bytes?sig=s3cret")
        self.assertEqual(body, b"png bytes")
        self.assertEqual(headers["content-length"], "9")
        self.assertNotIn("transfer-encoding", headers)
        self.assertNotIn("authorization", headers)
        self.assertEqual(ctx.completion()["main"], {"updatedKeys": ["img"]})

    def test_write_file_streams_paths_and_file_objects(self) -> None:
        big = pattern(2 << 20)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "in.bin")
            with open(path, "wb") as f:
                f.write(big)
            ctx = self.ctx({}, {"a": "w-path", "b": "w-fileobj", "c": "w-seekable", "d": "w-pipe"})
            ctx.write_file("a", path)
            self.assertEqual(self.last_put()[2], big)
            self.assertEqual(self.last_put()[1]["content-length"], str(len(big)))
            with open(path, "rb") as f:
                f.seek(1000)  # read from where it stands
                ctx.write_file("b", f)
            self.assertEqual(self.last_put()[2], big[1000:])
            ctx.write_file("c", io.BytesIO(b"in memory"))
            self.assertEqual(self.last_put()[1]["content-length"], "9")
            r, w = os.pipe()

            def feed() -> None:
                with os.fdopen(w, "wb") as pipe:
                    pipe.write(big)

            feeder = threading.Thread(target=feed)
            feeder.start()
            with os.fdopen(r, "rb") as pipe:
                ctx.write_file("d", pipe)
            feeder.join()
            self.assertEqual(self.last_put()[2], big)
            self.assertEqual(self.last_put()[1]["content-length"], str(len(big)))
        self.assertEqual(ctx.completion()["main"], {"updatedKeys": ["a", "b", "c", "d"]})
        with self.assertRaisesRegex(oprc.TaskError, "cannot upload file 'a': .*No such file"):
            ctx.write_file("a", os.path.join(d, "gone.bin"))

    def test_output_files_go_to_output_keys(self) -> None:
        ctx = self.ctx({}, {}, output={"thumb": "w-out"})
        assert ctx.output is not None
        ctx.output.write_file("thumb", b"t")
        self.assertEqual(ctx.completion(), {"id": "i", "success": True, "output": {"updatedKeys": ["thumb"]}})

    def test_a_handler_reads_and_writes_files_through_the_app(self) -> None:
        self.blobs.files["src"] = b"hello"
        app = oprc.App()

        @app.function("upper")
        def upper(ctx: oprc.Context) -> Any:
            ctx.write_file("out", ctx.read_file("in").upper())
            return None

        task = {
            "id": "t",
            "funcKey": "p.upper",
            "fbName": "upper",
            "ts": 0,
            "main": {"_meta": {"id": "o", "cls": "p.c", "revision": 1}, "data": {}},
            "mainGetKeys": {"in": self.url("src")},
            "mainPutKeys": {"out": self.url("w-upper")},
        }
        status, raw = app.handle(json.dumps(task).encode())
        self.assertEqual((status, json.loads(raw)), (200, {"id": "t", "success": True, "main": {"updatedKeys": ["out"]}}))
        self.assertEqual(self.blobs.files["w-upper"], b"HELLO")


if __name__ == "__main__":
    unittest.main()
