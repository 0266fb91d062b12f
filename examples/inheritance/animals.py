"""Inheritance: `dog` overrides the `speak` of its parent class `animal`.

Both functions live in this one script; the SDK dispatches on the task's function key
(`inheritance.animal-speak` or `inheritance.dog-speak`), so the binding name `speak`, which
both classes share, does not need to be unique.

Run by the platform as a process function (`PORT` set), from the repository root:
  PYTHONPATH=sdk/python python3 examples/inheritance/animals.py
"""

from typing import Any

import oprc

app = oprc.App()


def name_of(ctx: oprc.Context) -> str:
    return str(ctx.main.data.get("name", ctx.main.id))


@app.function("animal-speak")
def animal_speak(ctx: oprc.Context) -> Any:
    """The base behaviour: says the animal's `sound`, changes nothing."""
    sound = ctx.main.data.get("sound", "...")
    return {"says": f"{name_of(ctx)} says {sound}", "impl": "animal"}


@app.function("dog-speak")
def dog_speak(ctx: oprc.Context) -> Any:
    """The override: a dog barks, and counts its barks in its data."""
    barks = int(ctx.main.data.get("barks", 0)) + 1
    ctx.main.data["barks"] = barks
    return {"says": f"{name_of(ctx)} says woof", "impl": "dog", "barks": barks}


@app.function("describe")
def describe(ctx: oprc.Context) -> Any:
    """Declared on `animal` only: `dog` inherits it unchanged."""
    return {"name": name_of(ctx), "cls": ctx.main.cls, "binding": ctx.fb_name}


if __name__ == "__main__":
    app.run()
