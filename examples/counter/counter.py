"""A counter: the smallest stateful function, handy for concurrency tests.

Functions (see package.yaml):
  increment  adds `by` (default 1) to `count`; `sleepMs` (default 0) waits before answering,
             so concurrent calls overlap inside the function.
  count      reads `count` without changing the object.
  fail       changes `count`, then fails: the platform must keep the old state.

Run by the platform as a process function (`PORT` set), from the repository root:
  PYTHONPATH=sdk/python python3 examples/counter/counter.py
"""

import time
from typing import Any

import oprc

app = oprc.App()


def current(ctx: oprc.Context) -> int:
    value = ctx.main.data.get("count", 0)
    if not isinstance(value, int):
        raise oprc.TaskError(f"count of object {ctx.main.id} is not an integer: {value!r}")
    return value


@app.function("increment")
def increment(ctx: oprc.Context) -> Any:
    """Adds `by` to `count` and answers the new count."""
    by = ctx.int_arg("by", 1)
    sleep_ms = ctx.int_arg("sleepMs", 0)
    count = current(ctx) + by
    if sleep_ms > 0:
        time.sleep(sleep_ms / 1000)
    ctx.main.data["count"] = count
    return {"count": count}


@app.function("count")
def count(ctx: oprc.Context) -> Any:
    """Answers the current count; the object is not changed."""
    return {"count": current(ctx)}


@app.function("fail")
def fail(ctx: oprc.Context) -> Any:
    """Changes the data, then fails: nothing may be committed."""
    ctx.main.data["count"] = current(ctx) + 1000
    raise oprc.TaskError("failed on purpose; the count must not change")


if __name__ == "__main__":
    app.run()
