"""Streamed transfers of objects' files through the task's presigned URLs.

Standard library only (``urllib.request``). Nothing here holds a whole file
in memory unless asked to (``read_file``): downloads are read chunk by chunk,
uploads stream from a file with their length as ``Content-Length`` (presigned
PUTs take no chunked body). The URLs carry their own signature: no credential
is ever added to them.

These calls block; from an ``async`` handler run them in a thread, e.g.
``await asyncio.to_thread(ctx.main.read_file, "image")``.
"""

import http.client
import io
import os
import secrets
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO, Iterator, Optional, Tuple, Union

from .errors import TaskError

__all__ = ["FileStream", "CHUNK", "open_url", "download", "upload"]

#: Read size of downloads and uploads.
CHUNK = 64 * 1024
#: How much of an error answer's body a message quotes.
_EXCERPT = 200
#: Uploads from a stream of unknown length are spooled to disk past this.
_SPOOL_IN_MEMORY = 8 * 1024 * 1024

PathLike = Union[str, "os.PathLike[str]"]
Data = Union[bytes, bytearray, memoryview, PathLike, BinaryIO]


def shown(url: str) -> str:
    """``url`` without its query: a presigned URL's query is its signature."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _excerpt(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read(4 * _EXCERPT)
    except Exception:  # noqa: BLE001 - the status is what matters
        body = b""
    text = " ".join(body.decode("utf-8", "replace").split())[:_EXCERPT]
    return f": {text}" if text else ""


def _refused(what: str, url: str, error: urllib.error.HTTPError) -> TaskError:
    return TaskError(f"{what}: {shown(url)} answered HTTP {error.code} {error.reason}{_excerpt(error)}")


def _unreachable(what: str, url: str, error: BaseException) -> TaskError:
    reason = getattr(error, "reason", None) or error
    return TaskError(f"{what}: cannot reach {shown(url)}: {reason}")


class FileStream(io.RawIOBase):
    """The body of a file's GET URL, as a readable binary stream.

    ``read(n)``, ``readinto``, ``read()`` (all of it), ``chunks(size)``
    (an iterator of ``bytes``), and a context manager; ``length`` is the
    size the server announced (or None). A body that ends before that size
    raises :class:`TaskError` instead of looking like a complete file.
    """

    def __init__(self, response: Any, key: str, url: str) -> None:
        super().__init__()
        self._response = response
        self._key = key
        self._url = url
        header = response.headers.get("Content-Length")
        self.length: Optional[int] = int(header) if header and header.isdigit() else None
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = self._response.readinto(buffer)
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise self._broken(str(e) or type(e).__name__) from None
        if not n and len(buffer) and self.length is not None and self.received < self.length:
            raise self._broken("the connection closed")
        self.received += n or 0
        return n or 0

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The rest of the body in pieces of at most ``size`` bytes."""
        while True:
            chunk = self.read(size)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()

    def _broken(self, why: str) -> TaskError:
        of = f" of {self.length}" if self.length is not None else ""
        return TaskError(
            f"download of file {self._key!r} from {shown(self._url)} broke off after "
            f"{self.received}{of} bytes: {why}"
        )


def open_url(url: str, key: str, timeout: Optional[float]) -> FileStream:
    """GETs ``url`` (redirects followed) and answers its body as a stream."""
    what = f"download of file {key!r}"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout)
    except urllib.error.HTTPError as e:
        raise _refused(what, url, e) from None
    except (urllib.error.URLError, OSError) as e:
        raise _unreachable(what, url, e) from None
    return FileStream(response, key, url)


def download(stream: FileStream, path: PathLike) -> int:
    """Writes ``stream`` to ``path`` through a temporary file beside it,
    renamed over ``path`` once complete (so a broken-off download leaves no
    half file), and answers the bytes written."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.part")
    # Created like any new file: the umask applies.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in stream.chunks():
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return stream.received


class _Exactly(io.RawIOBase):
    """``length`` bytes of ``source``, no more (a file that grows meanwhile
    must not overrun the declared ``Content-Length``), and an error if it
    has fewer."""

    def __init__(self, source: BinaryIO, length: int, key: str) -> None:
        super().__init__()
        self._source = source
        self._left = length
        self._length = length
        self._key = key

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        chunk = self._source.read(size)
        if not chunk:
            raise TaskError(
                f"file {self._key!r} shrank while it was uploaded "
                f"({self._length - self._left} of {self._length} bytes read)"
            )
        self._left -= len(chunk)
        return chunk


def _body(data: Data, key: str) -> Tuple[Any, int, Optional[BinaryIO]]:
    """The request body for ``data``, its length, and a file to close after."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        body = bytes(data) if isinstance(data, memoryview) else data
        return body, len(body), None
    if isinstance(data, (str, os.PathLike)):
        try:
            f = open(data, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as e:
            raise TaskError(f"cannot upload file {key!r}: {e}") from None
        size = os.fstat(f.fileno()).st_size
        return _Exactly(f, size, key), size, f
    if not hasattr(data, "read"):
        raise TaskError(
            f"cannot upload file {key!r}: expected bytes, a path or a binary file object, "
            f"got {type(data).__name__}"
        )
    length = _remaining(data)
    if length is not None:
        return _Exactly(data, length, key), length, None
    # A pipe, a socket, a generator-backed stream: its length is only
    # known at its end.
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    shutil.copyfileobj(data, spool, CHUNK)
    size = spool.tell()
    spool.seek(0)
    return _Exactly(spool, size, key), size, spool  # type: ignore[arg-type]


def _remaining(f: Any) -> Optional[int]:
    """Bytes left in ``f`` from where it stands, when that can be known."""
    try:
        st = os.fstat(f.fileno())
        if not (st.st_mode & 0o170000 == 0o100000):  # not a regular file
            return None
        return max(st.st_size - f.tell(), 0)
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    try:
        if f.seekable():
            here = f.tell()
            end = f.seek(0, io.SEEK_END)
            f.seek(here)
            return max(end - here, 0)
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    return None


def upload(url: str, key: str, data: Data, timeout: Optional[float]) -> int:
    """PUTs ``data`` to ``url`` with ``Content-Length`` and answers the bytes sent."""
    body, length, owned = _body(data, key)
    what = f"upload of file {key!r}"
    request = urllib.request.Request(
        url,
        data=body,
        method="PUT",
        headers={"Content-Length": str(length), "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as e:
        raise _refused(what, url, e) from None
    except (urllib.error.URLError, OSError) as e:
        raise _unreachable(what, url, e) from None
    finally:
        if owned is not None:
            owned.close()
    return length
