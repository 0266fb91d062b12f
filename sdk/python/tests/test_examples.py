"""The repository's Python examples (examples/*/*.py) answer tasks as documented."""

import importlib.util
import json
import pathlib
import unittest
from types import ModuleType
from typing import Any, Dict, Optional, Tuple

import oprc

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def load(relative: str) -> oprc.App:
    path = EXAMPLES / relative
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    assert isinstance(app, oprc.App)
    return app


def run(
    app: oprc.App,
    func_key: str,
    fb_name: str,
    data: Any,
    args: Optional[Dict[str, str]] = None,
    cls: str = "example.record",
    output: bool = False,
) -> Tuple[int, Dict[str, Any]]:
    task: Dict[str, Any] = {
        "id": "t",
        "funcKey": func_key,
        "fbName": fb_name,
        "args": args or {},
        "ts": 0,
        "immutable": output,
        "main": {"_meta": {"id": "o1", "cls": cls, "revision": 1}, "data": data},
    }
    if output:
        task["output"] = {"_meta": {"id": "o2", "cls": cls, "revision": 0}, "data": {}}
    status, raw = app.handle(json.dumps(task).encode())
    return status, json.loads(raw)


@unittest.skipUnless(EXAMPLES.is_dir(), "examples/ not found next to sdk/")
class RecordExampleTest(unittest.TestCase):
    def setUp(self) -> None:
        self.app = load("record/record.py")

    def test_random_adds_pairs_of_paper_sizes(self) -> None:
        status, c = run(self.app, "example.random", "random", {"keep": "me"}, {"n": "20"})
        self.assertEqual(status, 200)
        self.assertTrue(c["success"], c)
        data = c["main"]["data"]
        self.assertEqual(len(data), 21)
        self.assertEqual(data["keep"], "me")
        new = {k: v for k, v in data.items() if k != "keep"}
        self.assertTrue(all(len(k) == 10 and len(v) == 40 for k, v in new.items()))
        self.assertEqual(c["body"], {"added": 20, "size": 21})

    def test_random_defaults_to_ten_pairs(self) -> None:
        _, c = run(self.app, "example.random", "random", {})
        self.assertEqual(len(c["main"]["data"]), 10)

    def test_random_rejects_bad_n(self) -> None:
        for n in ("x", "-1"):
            _, c = run(self.app, "example.random", "random", {}, {"n": n})
            self.assertFalse(c["success"])
            self.assertIn("'n'", c["errorMsg"])

    def test_random_copy_writes_output_only(self) -> None:
        _, c = run(self.app, "example.random-copy", "random-copy", {"a": "b"}, {"n": "5"}, output=True)
        self.assertTrue(c["success"], c)
        self.assertNotIn("main", c)
        self.assertEqual(len(c["output"]["data"]), 6)
        self.assertEqual(c["output"]["data"]["a"], "b")


@unittest.skipUnless(EXAMPLES.is_dir(), "examples/ not found next to sdk/")
class CounterExampleTest(unittest.TestCase):
    def test_increment_count_and_fail(self) -> None:
        app = load("counter/counter.py")
        _, c = run(app, "counter.increment", "increment", {"count": 2}, {"by": "3"})
        self.assertEqual((c["main"], c["body"]), ({"data": {"count": 5}}, {"count": 5}))
        _, c = run(app, "counter.count", "count", {"count": 2})
        self.assertEqual(c, {"id": "t", "success": True, "body": {"count": 2}})
        _, c = run(app, "counter.fail", "fail", {"count": 2})
        self.assertFalse(c["success"])
        self.assertNotIn("main", c)


@unittest.skipUnless(EXAMPLES.is_dir(), "examples/ not found next to sdk/")
class InheritanceExampleTest(unittest.TestCase):
    def test_override_is_chosen_by_function_key(self) -> None:
        app = load("inheritance/animals.py")
        _, c = run(app, "inheritance.animal-speak", "speak", {"name": "Tom", "sound": "meow"})
        self.assertEqual(c["body"], {"says": "Tom says meow", "impl": "animal"})
        self.assertNotIn("main", c)
        _, c = run(app, "inheritance.dog-speak", "speak", {"name": "Rex"}, cls="inheritance.dog")
        self.assertEqual(c["body"], {"says": "Rex says woof", "impl": "dog", "barks": 1})
        self.assertEqual(c["main"], {"data": {"name": "Rex", "barks": 1}})
        _, c = run(app, "inheritance.describe", "describe", {}, cls="inheritance.dog")
        self.assertEqual(c["body"], {"name": "o1", "cls": "inheritance.dog", "binding": "describe"})


if __name__ == "__main__":
    unittest.main()
