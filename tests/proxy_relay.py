"""A ProxyCommand for the tests: ``proxy_relay.py HOST PORT LOG`` connects to HOST:PORT
and relays its standard input and output to it (as ``nc HOST PORT`` would), after
appending ``HOST PORT PID`` to LOG (the tests read it: the proxy ran, with the tokens
expanded, and was ended with the connection)."""

from __future__ import annotations

import os
import socket
import sys
import threading


def main() -> None:
    host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(log, "a") as f:
        f.write(f"{host} {port} {os.getpid()}\n")
    sock = socket.create_connection((host, port))

    def upstream() -> None:
        while data := os.read(0, 1 << 16):
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    while data := sock.recv(1 << 16):
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]


if __name__ == "__main__":
    main()
