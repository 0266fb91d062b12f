"""The paper's IO-bound workload: append a string to an object's text file.

Function (see package.yaml):
  concat  appends `append` (the arg, or the body's `{"append": ...}`) to the
          main object's file `text` and answers `{"length": N}`, the new size
          in bytes. A text with no version yet counts as empty. The object's
          data keeps `length` too.

The file is streamed: the current version is copied into a temporary file,
the string appended there, and the result uploaded as the task's new
version, so memory stays flat whatever the file's size. The platform
switches the object to that version when it commits the call (and not at
all if the call fails), one call per object at a time.

Run by the platform as a process function, from the repository root:
  PYTHONPATH=sdk/python python3 examples/text/text.py
"""

import shutil
import tempfile
from typing import Any

import oprc

KEY = "text"
#: Bytes copied at a time.
CHUNK = 64 * 1024

app = oprc.App()


def appended(ctx: oprc.Context) -> bytes:
    """The string to append, UTF-8 encoded: the arg or the body's, not both."""
    from_arg = ctx.arg("append")
    body = ctx.body
    from_body = None
    if isinstance(body, dict) and "append" in body:
        from_body = body["append"]
        if not isinstance(from_body, str):
            raise oprc.TaskError(f"the body's `append` must be a string, got {type(from_body).__name__}")
    elif body is not None and body != {}:
        raise oprc.TaskError('the body must be {"append": "..."} (or pass the arg `append`)')
    if from_arg is not None and from_body is not None:
        raise oprc.TaskError("give `append` as the arg or in the body, not both")
    text = from_arg if from_arg is not None else from_body
    if text is None:
        raise oprc.TaskError('concat needs `append`: the arg `?append=...` or the body {"append": "..."}')
    return text.encode("utf-8")


@app.function("concat")
def concat(ctx: oprc.Context) -> Any:
    """Appends the string to file `text` and answers its new length."""
    suffix = appended(ctx)
    main = ctx.main
    # A scratch file, not `download_file`: that one makes a durable file
    # (fsync, rename), which a scratch copy does not need.
    with tempfile.TemporaryFile(prefix="oprc-text-") as scratch:
        # No GET URL: the object has no version of the file yet (empty).
        if KEY in main.file_keys:
            with main.open_file(KEY) as current:
                shutil.copyfileobj(current, scratch, CHUNK)
        scratch.write(suffix)
        length = scratch.tell()
        scratch.seek(0)
        main.write_file(KEY, scratch)
    if isinstance(main.data, dict):
        main.data["length"] = length
    return {"length": length}


if __name__ == "__main__":
    app.run()
