"""Calls from a function to other objects' functions, through the node.

The node gives each task a ``callUrl`` (its API base) and a ``callToken``
(a bearer token that expires with the task and grants only the invocation
routes). A call is ``POST {callUrl}/api/classes/{cls}[/objects/{oid}]/invokes/{fn}``
with the arguments in the query and an ``Idempotency-Key`` of
``{task id}/{seq}``, where ``seq`` counts the calls of this task from 1: a
replayed task makes the same calls with the same keys, and the node does
not repeat their effects.

Standard library only (``http.client``; no proxy from the environment is
used, the node is called directly). Calls block; from an ``async`` handler
run them in a thread: ``await asyncio.to_thread(ctx.invoke, ...)``.
"""

import http.client
import json
import socket
import threading
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional

from .errors import TaskError

__all__ = [
    "BAD_ANSWER",
    "BAD_ARG",
    "DEFAULT_TIMEOUT",
    "NO_CALL_URL",
    "TIMEOUT",
    "UNREACHABLE",
    "CallError",
    "Caller",
]

#: The task has no ``callUrl``/``callToken`` (or an unusable one).
NO_CALL_URL = "NO_CALL_URL"
#: The node could not be reached (connection refused, reset, ...).
UNREACHABLE = "UNREACHABLE"
#: No answer within the call's timeout. The call may still run; a replay
#: of the task sends the same key, so it does not run twice.
TIMEOUT = "TIMEOUT"
#: The answer is not what the protocol says (not JSON, wrong shape).
BAD_ANSWER = "BAD_ANSWER"
#: An argument name starts with ``_`` (the node reads those as flags).
BAD_ARG = "BAD_ARG"

#: Seconds a call waits for the node (to connect, and for each read of the
#: answer; a sync call's answer comes when the called function is done).
DEFAULT_TIMEOUT = 30.0

#: Invocation statuses that mean the call ran and failed.
_FAILED = ("FAILED", "DEPENDENCY_FAILED")
#: How much of a non-JSON answer a message quotes.
_EXCERPT = 200
_USER_AGENT = "oprc-sdk-python/0.1.0"


class CallError(TaskError):
    """A call to another object failed, was refused, or got no answer.

    Attributes:
        code: what went wrong, e.g. ``forbidden``, ``reentrant_call``,
            ``unauthorized`` (refused by the node), the failed invocation's
            error code (e.g. ``function_failed``), or one of the SDK's own:
            ``NO_CALL_URL``, ``UNREACHABLE``, ``TIMEOUT``, ``BAD_ANSWER``,
            ``BAD_ARG``.
        message: the node's (or the SDK's) explanation.
        status: the HTTP status of the answer, or None when there was none.
        answer: the answer as parsed JSON, or None.

    A subclass of :class:`TaskError`: left uncaught, it fails the task with
    ``str(error)`` as its message.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: Optional[int] = None,
        answer: Any = None,
        what: str = "call",
    ) -> None:
        http_status = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{what} failed: {code}{http_status}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.answer = answer


def _arg_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Caller:
    """Makes one task's calls: its node, its token, its key sequence.

    Thread-safe: the sequence number is taken under a lock, so calls made
    from several threads get distinct keys (in the order they start, which
    is only deterministic when the calls are made one after another).
    """

    def __init__(self, call_url: Any, call_token: Any, task_id: str) -> None:
        self._url = call_url if isinstance(call_url, str) else None
        self._token = call_token if isinstance(call_token, str) else None
        self._task_id = task_id
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether the node gave this task a way to call other objects."""
        return bool(self._url) and bool(self._token)

    @property
    def calls_made(self) -> int:
        """How many calls this task has made (the last sequence number)."""
        return self._seq

    def call(
        self,
        segments: List[str],
        what: str,
        args: Optional[Mapping[str, Any]],
        body: Any,
        async_: bool,
        timeout: Optional[float],
    ) -> Dict[str, Any]:
        """POSTs a call to ``/api/<segments>`` and answers the invocation."""
        query: List[Any] = []
        for name, value in (args or {}).items():
            name = str(name)
            if name.startswith("_"):
                raise CallError(
                    BAD_ARG,
                    f"argument {name!r} starts with '_', which the node reads as a flag, not an argument",
                    what=what,
                )
            if value is not None:
                query.append((name, _arg_value(value)))
        if async_:
            query.append(("_async", "true"))

        if not self.available:
            raise CallError(
                NO_CALL_URL,
                "the node did not give this task a way to call other objects "
                "(no callUrl and callToken in the task; the node may be too old)",
                what=what,
            )
        parts = urllib.parse.urlsplit(self._url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CallError(NO_CALL_URL, f"the task's callUrl is not an http(s) URL: {self._url!r}", what=what)

        path = parts.path.rstrip("/") + "/api/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
        if query:
            path += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        with self._lock:
            self._seq += 1
            seq = self._seq
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Idempotency-Key": f"{self._task_id}/{seq}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        payload: Optional[bytes] = None
        if body is not None:
            try:
                payload = json.dumps(body, separators=(",", ":")).encode()
            except (TypeError, ValueError) as e:
                raise CallError(BAD_ARG, f"body is not JSON serializable: {e}", what=what) from None
            headers["Content-Type"] = "application/json"

        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = kind(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request("POST", path, body=payload, headers=headers)
            response = conn.getresponse()
            status = response.status
            raw = response.read()
        except socket.timeout:
            raise CallError(TIMEOUT, f"no answer from the node within {timeout} s", what=what) from None
        except (OSError, http.client.HTTPException) as e:
            reason = str(e) or type(e).__name__
            raise CallError(UNREACHABLE, f"cannot reach the node at {_base(parts)}: {reason}", what=what) from None
        finally:
            conn.close()
        return _answer(status, raw, what)


def _base(parts: urllib.parse.SplitResult) -> str:
    """The callUrl as shown in messages (no user info, query or fragment)."""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path.rstrip('/')}"


def _answer(status: int, raw: bytes, what: str) -> Dict[str, Any]:
    """The invocation of a 2xx answer, or the CallError an answer means."""
    try:
        answer: Any = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        text = " ".join(raw.decode("utf-8", "replace").split())[:_EXCERPT]
        shape = "a JSON object" if 200 <= status < 300 else '{"error": {"code", "message"}} or an invocation'
        got = f": {text}" if text else " (empty)"
        raise CallError(BAD_ANSWER, f"the node's answer is not {shape}{got}", status, answer, what)

    error = answer.get("error")
    error = error if isinstance(error, dict) else {}
    inv_status = answer.get("status")
    if 200 <= status < 300 and inv_status not in _FAILED:
        return answer
    if inv_status in _FAILED:
        code = str(error.get("code") or inv_status)
        message = str(error.get("message") or answer.get("errorMsg") or f"the call ended {inv_status}")
        raise CallError(code, message, status, answer, what)
    if error:
        code = str(error.get("code") or f"HTTP_{status}")
        raise CallError(code, str(error.get("message") or ""), status, answer, what)
    raise CallError(BAD_ANSWER, f"the node answered HTTP {status} without an error", status, answer, what)
