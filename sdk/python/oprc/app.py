"""The function app: handler registry, task dispatch and the HTTP server.

Protocol (Oparaca task offloading): the platform POSTs a task JSON to the
worker, the worker answers ``200`` with a completion JSON. A handler failure
is still a ``200`` with ``success: false``; only a request that is not a task
at all gets ``400``. ``GET /healthz`` answers ``200`` for liveness checks.

The node's process engine sets ``OPRC_SOCKET`` (a Unix socket path in a
directory only the node's user can enter) besides ``PORT``; ``App.run``
listens on that socket when it is set, so tasks reach this worker and no
other process.
"""

import asyncio
import inspect
import json
import os
import signal
import socketserver
import stat
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union, overload

from .context import Context, TaskError

__all__ = ["App", "Handler", "RunningServer"]

Handler = Callable[[Context], Any]
"""A handler takes the :class:`Context`; its return value (any JSON value,
or None) becomes the completion's ``body``. ``async def`` handlers work too."""

F = TypeVar("F", bound=Callable[..., Any])

MAX_BODY_BYTES = 256 * 1024 * 1024


class App:
    """A set of task handlers served over HTTP.

    Handlers are registered under a name. A task goes to the first handler
    whose name equals, in this order: the task's ``funcKey``
    (``example.random``), the function part of it (``random``), or the
    binding name the caller used (``fbName``).
    """

    def __init__(self, log_requests: bool = False) -> None:
        """``log_requests`` prints one stderr line per HTTP request."""
        self._handlers: Dict[str, Handler] = {}
        self.log_requests = log_requests
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_lock = threading.Lock()

    # -- registration -----------------------------------------------------

    @overload
    def function(self, name: F) -> F: ...

    @overload
    def function(self, name: Optional[str] = None) -> Callable[[F], F]: ...

    def function(self, name: Union[str, F, None] = None) -> Union[F, Callable[[F], F]]:
        """Decorator registering a handler under ``name`` (default: its
        Python name). Usable bare (``@app.function``) or called."""
        if callable(name):
            self.add(name.__name__, name)
            return name

        def register(fn: F) -> F:
            self.add(name or fn.__name__, fn)
            return fn

        return register

    def add(self, name: str, fn: Handler) -> None:
        """Registers ``fn`` under ``name``; a name may be registered once."""
        if not name:
            raise ValueError("handler name must not be empty")
        if name in self._handlers:
            raise ValueError(f"a handler named {name!r} is already registered")
        self._handlers[name] = fn

    @property
    def names(self) -> Tuple[str, ...]:
        """The registered handler names."""
        return tuple(self._handlers)

    def lookup(self, func_key: str, fb_name: str) -> Optional[Handler]:
        """The handler for a task, or None."""
        short = func_key.rsplit(".", 1)[-1]
        for key in (func_key, short, fb_name):
            fn = self._handlers.get(key)
            if fn is not None:
                return fn
        return None

    # -- dispatch -----------------------------------------------------------

    def handle(self, raw: bytes) -> Tuple[int, bytes]:
        """Runs one task given as raw JSON; returns (HTTP status, JSON body).

        Never raises: handler failures become ``success: false``.
        """
        try:
            # Decoded twice: the second tree is the untouched snapshot that
            # change detection compares against (cheaper than a deep copy).
            task = json.loads(raw)
            snapshot = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            # RecursionError: nested deeper than Python's parser goes.
            return 400, _dump({"success": False, "errorMsg": f"malformed task: not JSON: {e}"})
        problem = _check_task(task)
        if problem is not None:
            return 400, _dump({"success": False, "errorMsg": f"malformed task: {problem}"})

        task_id = task["id"]
        func_key = str(task.get("funcKey", ""))
        fb_name = str(task.get("fbName", ""))
        fn = self.lookup(func_key, fb_name)
        if fn is None:
            served = ", ".join(sorted(self._handlers)) or "none"
            return 200, _failure(
                task_id,
                f"no handler for function {func_key!r} (binding {fb_name!r}); "
                f"this worker serves: {served}",
            )

        ctx = Context(task, snapshot)
        try:
            result = fn(ctx)
            if inspect.isawaitable(result):
                result = self._await(result)
            completion = ctx.completion(result)
        except TaskError as e:
            return 200, _failure(task_id, str(e) or "task failed")
        except Exception as e:  # noqa: BLE001 - every handler error fails the task
            print(f"oprc: handler for {fb_name!r} (task {task_id}) failed:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return 200, _failure(task_id, f"{type(e).__name__}: {e}")
        try:
            return 200, _dump(completion)
        except (TypeError, ValueError, RecursionError) as e:
            return 200, _failure(task_id, f"handler result is not JSON serializable: {e}")

    def _await(self, awaitable: Any) -> Any:
        """Runs a coroutine on the app's event loop thread and waits for it.

        One loop for all requests, so async clients and caches can be shared
        between tasks.
        """
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="oprc-asyncio", daemon=True).start()
                self._loop = loop
            loop = self._loop

        async def wrap() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrap(), loop).result()

    # -- serving -----------------------------------------------------------

    def make_server(self, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        """A bound, not yet running server (call ``serve_forever``)."""
        server = _Server((host, port), _RequestHandler)
        server.app = self
        return server

    def make_unix_server(self, path: str) -> socketserver.BaseServer:
        """A server bound to the Unix socket ``path`` (a stale socket left
        there is replaced), not yet running."""
        if not hasattr(socketserver, "UnixStreamServer"):
            raise OSError("Unix sockets are not available on this platform")
        _remove_socket(path)
        server = _UnixServer(path, _UnixRequestHandler)
        server.app = self
        return server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "RunningServer":
        """Serves in a background thread; for tests and embedding."""
        return RunningServer(self.make_server(host, port))

    def start_unix(self, path: str) -> "RunningServer":
        """Serves on the Unix socket ``path`` in a background thread."""
        return RunningServer(self.make_unix_server(path))

    def run(self, port: Optional[int] = None, host: Optional[str] = None) -> None:
        """Serves until SIGINT/SIGTERM. Without arguments, on the Unix socket
        of env ``OPRC_SOCKET`` when it is set (the node sets it); else on
        ``port`` (default: env ``PORT``, else 8080) and ``host`` (default:
        env ``HOST``, else ``0.0.0.0``)."""
        unix_path = os.environ.get("OPRC_SOCKET") if port is None and host is None else None
        server: socketserver.BaseServer
        if unix_path:
            server = self.make_unix_server(unix_path)
            where = f"unix:{unix_path}"
        else:
            if port is None:
                port = int(os.environ.get("PORT", "8080"))
            if host is None:
                host = os.environ.get("HOST", "0.0.0.0")
            server = self.make_server(host, port)
            where = f"{host}:{server.server_address[1]}"

        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
        _watch_node()
        names = ", ".join(self._handlers) or "no handlers"
        print(f"oprc: serving {names} on {where}", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            if unix_path:
                _remove_socket(unix_path)


def _remove_socket(path: str) -> None:
    """Removes a Unix socket left at ``path`` (never any other file)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _watch_node() -> None:
    """Exits when the node that started this worker is gone.

    The platform's process engine sets ``OPRC_NODE_PID``; a node that dies
    without stopping its workers (SIGKILL, a crash) must not leave them
    running forever.
    """
    raw = os.environ.get("OPRC_NODE_PID")
    if not raw or not raw.isdigit():
        return
    pid = int(raw)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                try:
                    print(f"oprc: node {pid} is gone; exiting", file=sys.stderr, flush=True)
                except OSError:
                    pass  # stderr was a pipe to the dead node
                os._exit(0)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="oprc-node-watch", daemon=True).start()


class RunningServer:
    """A server running in a background thread; a context manager."""

    def __init__(self, server: socketserver.BaseServer) -> None:
        self.server = server
        self._thread = threading.Thread(target=server.serve_forever, name="oprc-server", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Optional[str]:
        """The Unix socket path, for a server from ``start_unix``; else None."""
        address = self.server.server_address
        if isinstance(address, bytes):
            address = address.decode()
        return address if isinstance(address, str) else None

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0); TCP servers only."""
        if self.path is not None:
            raise AttributeError("a server on a Unix socket has no port")
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``; TCP servers only."""
        host = self.server.server_address[0]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stops serving and closes the socket (a Unix socket is removed)."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
        if self.path is not None:
            _remove_socket(self.path)

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    app: App


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the platform reuses connections
    server_version = "oprc-python"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: Any  # _Server or _UnixServer: both carry the app

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/healthz", "/readyz"):
            self._send(200, b'{"status":"ok"}')
        else:
            self._send(404, b'{"success":false,"errorMsg":"not found; POST a task"}')

    def do_POST(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        status, payload = self.server.app.handle(raw)
        self._send(status, payload)

    def _read_body(self) -> Optional[bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(400, _dump({"success": False, "errorMsg": "malformed task: bad Content-Length"}))
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> Optional[bytes]:
        parts: List[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            total += max(size, 0)
            if size < 0 or total > MAX_BODY_BYTES:
                self.close_connection = True
                self._send(400, _dump({"success": False, "errorMsg": "malformed task: bad chunked body"}))
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.log_requests:
            super().log_message(format, *args)


class _UnixRequestHandler(_RequestHandler):
    disable_nagle_algorithm = False  # not a TCP socket

    def address_string(self) -> str:
        return "unix"


if hasattr(socketserver, "UnixStreamServer"):

    class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True
        request_queue_size = 128
        app: App


def _check_task(task: Any) -> Optional[str]:
    """Why ``task`` is not a task, or None."""
    if not isinstance(task, dict):
        return "expected a JSON object"
    if not isinstance(task.get("id"), str):
        return "field 'id' must be a string"
    if not task.get("funcKey") and not task.get("fbName"):
        return "field 'funcKey' or 'fbName' is required"
    for field in ("args", "mainGetKeys", "mainPutKeys", "outputKeys"):
        if task.get(field) is not None and not isinstance(task[field], dict):
            return f"field {field!r} must be an object"
    for field in ("main", "output"):
        if task.get(field) is not None and not isinstance(task[field], dict):
            return f"field {field!r} must be an object"
    return None


def _failure(task_id: str, message: str) -> bytes:
    return _dump({"id": task_id, "success": False, "errorMsg": message})


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
