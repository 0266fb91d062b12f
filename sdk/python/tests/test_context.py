"""Unit tests of change tracking and dispatch, without sockets."""

import json
import unittest
from typing import Any, Dict

import oprc


def ctx_for(data: Any, **extra: Any) -> oprc.Context:
    task: Dict[str, Any] = {
        "id": "i",
        "funcKey": "p.f",
        "fbName": "f",
        "ts": 1,
        "main": {"_meta": {"id": "o", "cls": "p.c", "revision": 2}, "data": data},
    }
    task.update(extra)
    raw = json.dumps(task)
    return oprc.Context(json.loads(raw), json.loads(raw))


class ChangeTrackingTest(unittest.TestCase):
    def test_untouched_data_is_not_sent(self) -> None:
        ctx = ctx_for({"a": {"b": [1]}})
        _ = ctx.main.data["a"]["b"][0]
        self.assertFalse(ctx.main.changed)
        self.assertEqual(ctx.completion(), {"id": "i", "success": True})

    def test_nested_mutation_is_detected(self) -> None:
        ctx = ctx_for({"a": {"b": [1]}})
        ctx.main.data["a"]["b"].append(2)
        self.assertEqual(ctx.completion()["main"], {"data": {"a": {"b": [1, 2]}}})

    def test_change_and_revert_is_no_change(self) -> None:
        ctx = ctx_for({"a": 1})
        ctx.main.data["a"] = 2
        ctx.main.data["a"] = 1
        self.assertNotIn("main", ctx.completion())

    def test_assignment_always_counts(self) -> None:
        ctx = ctx_for({"a": 1})
        ctx.main.data = {"a": 1}
        self.assertEqual(ctx.completion()["main"], {"data": {"a": 1}})

    def test_mark_changed_forces_send(self) -> None:
        ctx = ctx_for({})
        ctx.main.mark_changed()
        self.assertEqual(ctx.completion()["main"], {"data": {}})

    def test_missing_data_reads_as_empty_dict(self) -> None:
        ctx = oprc.Context({"id": "i", "fbName": "f", "main": {"_meta": {"id": "o", "cls": "p.c"}}})
        self.assertEqual(ctx.main.data, {})
        self.assertNotIn("main", ctx.completion())

    def test_meta_is_exposed(self) -> None:
        ctx = ctx_for({})
        self.assertEqual((ctx.main.id, ctx.main.cls, ctx.main.revision), ("o", "p.c", 2))
        self.assertEqual(ctx.main.meta["revision"], 2)
        self.assertIsNone(ctx.output)

    def test_int_arg(self) -> None:
        ctx = ctx_for({}, args={"n": "7", "bad": "x"})
        self.assertEqual(ctx.int_arg("n", 1), 7)
        self.assertEqual(ctx.int_arg("missing", 3), 3)
        with self.assertRaises(oprc.TaskError):
            ctx.int_arg("bad", 1)

    def test_without_snapshot_a_copy_is_made(self) -> None:
        ctx = oprc.Context({"id": "i", "fbName": "f", "main": {"_meta": {}, "data": {"x": [1]}}})
        ctx.main.data["x"].append(2)
        self.assertTrue(ctx.main.changed)


class DispatchTest(unittest.TestCase):
    def test_function_key_wins_over_binding_name(self) -> None:
        app = oprc.App()
        app.add("speak", lambda ctx: "base")
        app.add("dog-speak", lambda ctx: "override")
        fn = app.lookup("example.dog-speak", "speak")
        self.assertIsNotNone(fn)
        assert fn is not None
        self.assertEqual(fn(ctx_for({})), "override")
        base = app.lookup("example.animal-speak", "speak")
        assert base is not None
        self.assertEqual(base(ctx_for({})), "base")

    def test_bare_decorator_uses_python_name(self) -> None:
        app = oprc.App()

        @app.function
        def hello(ctx: oprc.Context) -> str:
            return "hi"

        self.assertEqual(app.names, ("hello",))
        status, raw = app.handle(json.dumps({"id": "i", "funcKey": "p.hello", "fbName": "x"}).encode())
        self.assertEqual((status, json.loads(raw)), (200, {"id": "i", "success": True, "body": "hi"}))

    def test_duplicate_name_is_rejected(self) -> None:
        app = oprc.App()
        app.add("f", lambda ctx: None)
        with self.assertRaises(ValueError):
            app.add("f", lambda ctx: None)


if __name__ == "__main__":
    unittest.main()
