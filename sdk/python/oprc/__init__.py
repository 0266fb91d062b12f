"""Oparaca function SDK for Python (no third-party dependency).

Write a handler per function, register it on an :class:`App` and run the app;
the platform POSTs tasks (the object's state plus arguments) and the SDK
answers with completions that carry only what the handler changed::

    import oprc

    app = oprc.App()

    @app.function("increment")
    def increment(ctx: oprc.Context):
        n = ctx.int_arg("by", 1)
        ctx.main.data["count"] = ctx.main.data.get("count", 0) + n
        return {"count": ctx.main.data["count"]}

    if __name__ == "__main__":
        app.run()  # OPRC_SOCKET when the node sets it, else env PORT (default 8080)
"""

from .app import App, Handler, RunningServer
from .calls import CallError
from .context import Context, ObjectView, TaskError
from .files import FileStream

__all__ = ["App", "CallError", "Context", "FileStream", "Handler", "ObjectView", "RunningServer", "TaskError"]
__version__ = "0.1.0"
