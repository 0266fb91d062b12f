"""What a handler sees of one task: :class:`Context` and :class:`ObjectView`.

A task carries the object's state to the function (pure-function model); the
handler changes it in place and the SDK sends back only what changed.
"""

from typing import Any, Dict, List, Mapping, Optional

from . import files
from .calls import DEFAULT_TIMEOUT as CALL_TIMEOUT
from .calls import Caller
from .errors import TaskError
from .files import Data, FileStream, PathLike

__all__ = ["Context", "ObjectView", "TaskError"]

#: Seconds a file transfer may wait on the network at a time (per read or
#: write, not for the whole transfer).
DEFAULT_TIMEOUT = 60.0

JsonDict = Dict[str, Any]


class ObjectView:
    """One object of a task (``main`` or ``output``): metadata, data, files.

    ``data`` is the object's structured state, usually a ``dict``. Mutate it
    in place or assign a new value; either way the object counts as changed
    and its new data goes back to the platform, which replaces the stored
    data whole. An object whose data is left equal to what arrived is not
    sent back at all.
    """

    __slots__ = ("_meta", "_data", "_original", "_forced", "_get_urls", "_put_urls", "_updated")

    def __init__(
        self,
        record: Mapping[str, Any],
        original_data: Any,
        get_urls: Optional[Mapping[str, str]] = None,
        put_urls: Optional[Mapping[str, str]] = None,
    ) -> None:
        meta = record.get("_meta")
        self._meta: JsonDict = dict(meta) if isinstance(meta, dict) else {}
        self._data: Any = record.get("data", {})
        if self._data is None:
            self._data = {}
        # An independent copy of the data as it arrived (the request is
        # decoded twice, which is cheaper than a deep copy).
        self._original: Any = {} if original_data is None else original_data
        self._forced = False
        self._get_urls: Dict[str, str] = dict(get_urls or {})
        self._put_urls: Dict[str, str] = dict(put_urls or {})
        self._updated: List[str] = []

    @property
    def id(self) -> str:
        """The object id (``_meta.id``)."""
        return str(self._meta.get("id", ""))

    @property
    def cls(self) -> str:
        """The qualified class key, e.g. ``example.record`` (``_meta.cls``)."""
        return str(self._meta.get("cls", ""))

    @property
    def revision(self) -> int:
        """The object's revision when the task was made."""
        return int(self._meta.get("revision", 0))

    @property
    def meta(self) -> JsonDict:
        """The platform-owned metadata (``_meta``); read-only by contract."""
        return self._meta

    @property
    def data(self) -> Any:
        """The structured state. Mutations are detected when the task ends."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value
        self._forced = True

    def mark_changed(self) -> None:
        """Sends the data back even if it compares equal to what arrived."""
        self._forced = True

    @property
    def changed(self) -> bool:
        """Whether the data will be sent back."""
        return self._forced or self._data != self._original

    @property
    def file_keys(self) -> List[str]:
        """Keys of the files that can be read (their GET URLs), sorted.

        The main object's own keys, and ``REF.KEY`` for the files of the
        objects it references (``refs``).
        """
        return sorted(self._get_urls)

    @property
    def upload_keys(self) -> List[str]:
        """Keys that can be written (their PUT URLs), sorted."""
        return sorted(self._put_urls)

    def get_url(self, key: str) -> str:
        """The presigned GET URL of file ``key`` (main object only; a
        referenced object's file is ``REF.KEY``).

        Raises :class:`TaskError` when the platform sent none for ``key``:
        the file has no version yet, or this function may not read it.
        """
        try:
            return self._get_urls[key]
        except KeyError:
            raise TaskError(
                f"no download URL for file key {key!r} of object {self.id} (no version yet, "
                f"or not accessible to this function); readable keys: {_listed(self._get_urls)}"
            ) from None

    def put_url(self, key: str) -> str:
        """The presigned PUT URL for a new version of file ``key``.

        Upload the bytes there, then call :meth:`mark_key_updated` (or use
        :meth:`write_file`, which does both). Raises :class:`TaskError`
        when the platform sent none for ``key``.
        """
        try:
            return self._put_urls[key]
        except KeyError:
            raise TaskError(
                f"no upload URL for file key {key!r} of object {self.id}; "
                f"writable keys: {_listed(self._put_urls)}"
            ) from None

    def open_file(self, key: str, timeout: Optional[float] = DEFAULT_TIMEOUT) -> FileStream:
        """File ``key`` as a readable binary stream (a context manager),
        streamed from its GET URL: ``read(n)``, ``read()``, ``chunks()``.

        ``key`` may be ``REF.KEY`` for a file of a referenced object. A
        missing URL or an error answer raises :class:`TaskError`; so does
        a body that breaks off before its announced length.
        """
        return files.open_url(self.get_url(key), key, timeout)

    def read_file(self, key: str, timeout: Optional[float] = DEFAULT_TIMEOUT) -> bytes:
        """File ``key`` whole, in memory (use :meth:`open_file` or
        :meth:`download_file` for large files)."""
        with self.open_file(key, timeout) as stream:
            return stream.read()

    def download_file(self, key: str, path: PathLike, timeout: Optional[float] = DEFAULT_TIMEOUT) -> int:
        """Streams file ``key`` to ``path`` and answers the bytes written.

        The bytes go to a temporary file beside ``path``, renamed to it once
        complete: a failed download leaves no half file.
        """
        with self.open_file(key, timeout) as stream:
            return files.download(stream, path)

    def write_file(self, key: str, data: Data, timeout: Optional[float] = DEFAULT_TIMEOUT) -> int:
        """Uploads a new version of file ``key`` and records ``key`` in the
        completion's ``updatedKeys``; answers the bytes sent.

        ``data`` is ``bytes`` (or ``bytearray``/``memoryview``), a path
        (``str`` or ``os.PathLike``; text must be encoded first), or a binary
        file object read from where it stands. It is streamed with its
        length as ``Content-Length``; a stream of unknown length (a pipe) is
        spooled to a temporary file first. The key is recorded only once the
        PUT succeeded; a failure raises :class:`TaskError`. The new version
        becomes the file's when the task's completion is committed (reading
        ``key`` again in this task still reads the old one).
        """
        sent = files.upload(self.put_url(key), key, data, timeout)
        self.mark_key_updated(key)
        return sent

    def mark_key_updated(self, key: str) -> None:
        """Reports that file ``key`` was uploaded through its PUT URL."""
        self._updated.append(key)

    @property
    def updated_keys(self) -> List[str]:
        """File keys reported as uploaded, in order."""
        return list(self._updated)

    def update(self) -> Optional[JsonDict]:
        """The completion entry for this object, or None for "no change"."""
        out: JsonDict = {}
        if self.changed:
            out["data"] = self._data
        if self._updated:
            out["updatedKeys"] = list(self._updated)
        return out or None

    def __repr__(self) -> str:
        return f"ObjectView(cls={self.cls!r}, id={self.id!r}, changed={self.changed})"


class Context:
    """Everything a handler gets for one task.

    Attributes:
        id: the invocation id.
        func_key: the qualified function key, e.g. ``example.random``.
        fb_name: the binding name the caller used, e.g. ``random``.
        args: string arguments (query parameters of the call, binding defaults).
        body: the request body (any JSON value) or None.
        immutable: True when the call must not change the main object.
        ts: the task's timestamp, milliseconds since the Unix epoch.
        main_get_keys / main_put_keys / output_keys: presigned file URLs.
        task: the raw task as decoded from JSON.

    :meth:`invoke` and :meth:`invoke_class` call other objects' functions
    through the node.
    """

    def __init__(self, task: Mapping[str, Any], snapshot: Optional[Mapping[str, Any]] = None) -> None:
        """Builds a context from a decoded task.

        ``snapshot`` is a second, independent decoding of the same task; the
        objects' data is compared against it to detect changes. Without it a
        deep copy is made.
        """
        if snapshot is None:
            import copy

            snapshot = copy.deepcopy(dict(task))
        self.task: Mapping[str, Any] = task
        self.id: str = str(task.get("id", ""))
        self.func_key: str = str(task.get("funcKey", ""))
        self.fb_name: str = str(task.get("fbName", ""))
        self.args: Dict[str, str] = {str(k): str(v) for k, v in (task.get("args") or {}).items()}
        self.body: Any = task.get("reqBody")
        self.immutable: bool = bool(task.get("immutable", False))
        self.ts: int = int(task.get("ts") or 0)
        self.main_get_keys: Dict[str, str] = dict(task.get("mainGetKeys") or {})
        self.main_put_keys: Dict[str, str] = dict(task.get("mainPutKeys") or {})
        self.output_keys: Dict[str, str] = dict(task.get("outputKeys") or {})
        self._main = _view(task, snapshot, "main", self.main_get_keys, self.main_put_keys)
        self._output = _view(task, snapshot, "output", None, self.output_keys)
        self._caller = Caller(task.get("callUrl"), task.get("callToken"), self.id)

    @property
    def has_main(self) -> bool:
        """Whether the task carries a main object (False for class-level calls)."""
        return self._main is not None

    @property
    def main(self) -> ObjectView:
        """The object the function was called on.

        Raises :class:`TaskError` for a class-level (``noMain``) call.
        """
        if self._main is None:
            raise TaskError(f"call of {self.fb_name!r} has no main object (class-level call)")
        return self._main

    @property
    def output(self) -> Optional[ObjectView]:
        """The new output object (bindings with ``outputCls``), or None."""
        return self._output

    def arg(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The string argument ``name``, or ``default``."""
        return self.args.get(name, default)

    def int_arg(self, name: str, default: int) -> int:
        """The argument ``name`` as an int; a non-integer fails the task."""
        raw = self.args.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise TaskError(f"argument {name!r} must be an integer, got {raw!r}") from None

    def open_file(self, key: str, timeout: Optional[float] = DEFAULT_TIMEOUT) -> FileStream:
        """The main object's file ``key`` (or ``REF.KEY``) as a stream; see
        :meth:`ObjectView.open_file`."""
        return self.main.open_file(key, timeout)

    def read_file(self, key: str, timeout: Optional[float] = DEFAULT_TIMEOUT) -> bytes:
        """The main object's file ``key`` whole; see :meth:`ObjectView.read_file`."""
        return self.main.read_file(key, timeout)

    def download_file(self, key: str, path: PathLike, timeout: Optional[float] = DEFAULT_TIMEOUT) -> int:
        """The main object's file ``key`` to ``path``; see :meth:`ObjectView.download_file`."""
        return self.main.download_file(key, path, timeout)

    def write_file(self, key: str, data: Data, timeout: Optional[float] = DEFAULT_TIMEOUT) -> int:
        """A new version of the main object's file ``key``; see
        :meth:`ObjectView.write_file` (``ctx.output.write_file`` for the
        output object's)."""
        return self.main.write_file(key, data, timeout)

    def update_main_key(self, key: str) -> None:
        """Reports that the main object's file ``key`` was uploaded."""
        self.main.mark_key_updated(key)

    def update_output_key(self, key: str) -> None:
        """Reports that the output object's file ``key`` was uploaded."""
        if self._output is None:
            raise TaskError("this call has no output object")
        self._output.mark_key_updated(key)

    @property
    def can_invoke(self) -> bool:
        """Whether the node gave this task a way to call other objects
        (``callUrl`` and ``callToken``)."""
        return self._caller.available

    def invoke(
        self,
        cls: str,
        oid: str,
        fn: str,
        args: Optional[Mapping[str, Any]] = None,
        body: Any = None,
        *,
        async_: bool = False,
        timeout: Optional[float] = CALL_TIMEOUT,
    ) -> JsonDict:
        """Calls function binding ``fn`` of object ``oid`` of class ``cls``
        through the node and answers the invocation as a dict: ``{invId,
        status, main?, output?, body?, ...}``.

        ``args`` become string arguments (``str(value)``, bools as
        ``"true"``/``"false"``, None values left out); ``body`` (any JSON
        value but None) is sent as the request body. A sync call answers
        once the called function is done (status ``SUCCEEDED``); with
        ``async_=True`` it answers once queued (``QUEUE`` or ``DOING``; poll
        ``GET /api/invocations/{invId}`` for the result).

        Each call of a task carries the idempotency key ``{task id}/{n}``
        for its n-th call, so a replayed task does not repeat a call's
        effects: make calls in a deterministic order. A sync mutating call
        on an object this call chain already holds (e.g. this task's main
        object) is refused with ``reentrant_call``.

        Raises :class:`oprc.CallError` when the call failed (``status:
        FAILED``), was refused (e.g. ``forbidden``), or got no usable
        answer; uncaught, it fails this task. Blocks; from an ``async``
        handler use ``await asyncio.to_thread(ctx.invoke, ...)``.
        """
        what = f"call of {fn!r} on {cls} object {oid!r}"
        segments = ["classes", cls, "objects", oid, "invokes", fn]
        return self._caller.call(segments, what, args, body, async_, timeout)

    def invoke_class(
        self,
        cls: str,
        fn: str,
        args: Optional[Mapping[str, Any]] = None,
        body: Any = None,
        *,
        async_: bool = False,
        timeout: Optional[float] = CALL_TIMEOUT,
    ) -> JsonDict:
        """Calls class-level function binding ``fn`` of class ``cls`` (e.g.
        ``new``, or a ``noMain`` binding); see :meth:`invoke`."""
        what = f"call of {fn!r} on class {cls}"
        return self._caller.call(["classes", cls, "invokes", fn], what, args, body, async_, timeout)

    def completion(self, body: Any = None) -> JsonDict:
        """The successful completion for this task with ``body`` as result."""
        out: JsonDict = {"id": self.id, "success": True}
        if self._main is not None:
            update = self._main.update()
            if update is not None:
                out["main"] = update
        if self._output is not None:
            update = self._output.update()
            if update is not None:
                out["output"] = update
        if body is not None:
            out["body"] = body
        return out


def _view(
    task: Mapping[str, Any],
    snapshot: Mapping[str, Any],
    name: str,
    get_urls: Optional[Mapping[str, str]],
    put_urls: Optional[Mapping[str, str]],
) -> Optional[ObjectView]:
    record = task.get(name)
    if not isinstance(record, dict):
        return None
    original = snapshot.get(name)
    original_data = original.get("data", {}) if isinstance(original, dict) else {}
    return ObjectView(record, original_data, get_urls, put_urls)


def _listed(urls: Mapping[str, str]) -> str:
    return ", ".join(sorted(urls)) or "none"
