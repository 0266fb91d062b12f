# A worker that never listens: it starts a squatter in another session (so
# outside the worker's process group) that takes the worker's $PORT, then
# sleeps. The squatter appends every byte it receives to $SQUAT_LOG and its
# pid to $SQUAT_PIDS; the test kills it.
import os
import socket
import subprocess
import sys
import time

if len(sys.argv) > 1 and sys.argv[1] == "squat":
    listener = socket.socket()
    listener.bind(("127.0.0.1", int(os.environ["PORT"])))
    listener.listen(16)
    print("squatting", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(2)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                with open(os.environ["SQUAT_LOG"], "ab") as log:
                    log.write(data)
        except OSError:
            pass
        conn.close()

squatter = subprocess.Popen(
    [sys.executable, __file__, "squat"], start_new_session=True,
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
)
with open(os.environ["SQUAT_PIDS"], "a") as pids:
    pids.write(f"{squatter.pid}\n")
squatter.stdout.readline()  # "squatting": the port is taken
time.sleep(3600)
