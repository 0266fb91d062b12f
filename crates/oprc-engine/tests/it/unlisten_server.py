# A worker that binds $PORT, answers one task with `connection: close`, then
# closes its listener but keeps running (its pid stays alive): the port is
# free for anyone to take. Writes "closed" to $UNLISTEN_MARK when it is.
import json
import os
import socket
import time

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(os.environ["PORT"])))
listener.listen(16)


def read_request(conn):
    """The body of one request, or None when the peer sent nothing (the
    engine's readiness probe)."""
    request = b""
    while b"\r\n\r\n" not in request:
        data = conn.recv(65536)
        if not data:
            return None
        request += data
    head, _, body = request.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return body


while True:
    conn, _ = listener.accept()
    if read_request(conn) is not None:
        break
    conn.close()
answer = json.dumps({"success": True, "body": {"pid": os.getpid()}}).encode()
conn.sendall(
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
)
conn.close()
listener.close()
with open(os.environ["UNLISTEN_MARK"], "w") as mark:
    mark.write("closed")
time.sleep(3600)
