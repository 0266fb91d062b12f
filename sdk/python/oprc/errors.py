"""How a handler fails a task: :class:`TaskError`."""

__all__ = ["TaskError"]


class TaskError(Exception):
    """Raise from a handler to fail the task with this message.

    The platform then changes nothing and reports the invocation as FAILED
    with ``errorMsg`` set to ``str(error)``. Any other exception fails the
    task too; ``TaskError`` only avoids logging a traceback for an expected
    failure.
    """
