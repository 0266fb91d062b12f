"""The dataflow benchmark's function (`oprc-bench dataflow`), written with
the repository's Python SDK (sdk/python on PYTHONPATH, standard library
only).

One handler, `work`, serves both bindings of class `bench.thing`:

  step   immutable, with an output object: answers {"ms": 0} at once (the
         trivial call the chains are made of; the node creates the output
         object, whose data stays {}).
  sleep  immutable, no output object: sleeps arg `ms` milliseconds (the
         binding's default), then answers {"ms": ms}.
"""

import time

import oprc

app = oprc.App()


@app.function("work")
def work(ctx: oprc.Context):
    ms = ctx.int_arg("ms", 0)
    if ms > 0:
        time.sleep(ms / 1000)
    return {"ms": ms}


if __name__ == "__main__":
    app.run()
