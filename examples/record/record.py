"""The paper's JSON-update workload: insert random key-value pairs into a record.

Functions (see package.yaml):
  random       in place: adds `n` random pairs (keys 10 chars, values 40 chars) to main's data.
  random-copy  immutable: the output object gets main's data plus `n` new pairs; main is untouched.
  fill         in place: replaces main's data with `n` random pairs, so the state keeps its size
               (the benchmark's steady-state JSON update).

Run by the platform as a process function (`PORT` set), from the repository root:
  PYTHONPATH=sdk/python python3 examples/record/record.py
"""

import random
import string
from typing import Any, Dict

import oprc

KEY_SIZE = 10
VALUE_SIZE = 40
MAX_PAIRS = 100_000
ALPHABET = string.ascii_letters + string.digits

app = oprc.App()
_rng = random.Random()


def random_pairs(n: int) -> Dict[str, str]:
    """`n` pairs of random alphanumeric strings (distinct keys)."""
    pairs: Dict[str, str] = {}
    while len(pairs) < n:
        key = "".join(_rng.choices(ALPHABET, k=KEY_SIZE))
        pairs[key] = "".join(_rng.choices(ALPHABET, k=VALUE_SIZE))
    return pairs


def pair_count(ctx: oprc.Context) -> int:
    n = ctx.int_arg("n", 10)
    if not 0 <= n <= MAX_PAIRS:
        raise oprc.TaskError(f"argument 'n' must be between 0 and {MAX_PAIRS}, got {n}")
    return n


def record_data(obj: oprc.ObjectView) -> Dict[str, Any]:
    if not isinstance(obj.data, dict):
        raise oprc.TaskError(f"data of object {obj.id} is not a JSON object")
    return obj.data


@app.function("random")
def insert_random(ctx: oprc.Context) -> Any:
    """Adds `n` random pairs to the main object's data."""
    n = pair_count(ctx)
    data = record_data(ctx.main)
    data.update(random_pairs(n))
    return {"added": n, "size": len(data)}


@app.function("random-copy")
def insert_random_copy(ctx: oprc.Context) -> Any:
    """Writes main's data plus `n` random pairs into the output object."""
    n = pair_count(ctx)
    if ctx.output is None:
        raise oprc.TaskError("random-copy needs an output object: bind it with outputCls")
    data = dict(record_data(ctx.main))
    data.update(random_pairs(n))
    ctx.output.data = data
    return {"added": n, "size": len(data), "output": ctx.output.id}


@app.function("fill")
def fill(ctx: oprc.Context) -> Any:
    """Replaces main's data with `n` random pairs."""
    n = pair_count(ctx)
    record_data(ctx.main)
    ctx.main.data = random_pairs(n)
    return {"size": n}


if __name__ == "__main__":
    app.run()
