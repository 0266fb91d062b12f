"""A worker exits when the node that started it is gone (OPRC_NODE_PID)."""

import os
import subprocess
import sys
import unittest

SDK = os.path.join(os.path.dirname(__file__), "..")
SCRIPT = "import oprc\napp = oprc.App()\napp.add('f', lambda ctx: None)\napp.run(port=0, host='127.0.0.1')\n"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class WatchTest(unittest.TestCase):
    def test_worker_exits_when_node_is_gone(self) -> None:
        env = dict(os.environ, PYTHONPATH=SDK, OPRC_NODE_PID=str(dead_pid()))
        worker = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stderr=subprocess.PIPE)
        try:
            self.assertEqual(worker.wait(timeout=10), 0)
        finally:
            worker.kill()
            worker.stderr.close()

    def test_worker_keeps_running_while_node_lives(self) -> None:
        env = dict(os.environ, PYTHONPATH=SDK, OPRC_NODE_PID=str(os.getpid()))
        worker = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stderr=subprocess.DEVNULL)
        try:
            with self.assertRaises(subprocess.TimeoutExpired):
                worker.wait(timeout=2.5)
        finally:
            worker.kill()
            worker.wait()


if __name__ == "__main__":
    unittest.main()
