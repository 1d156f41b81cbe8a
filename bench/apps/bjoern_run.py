"""Serves a WSGI application with bjoern: ``bjoern_run.py MODULE[:CALLABLE] PORT``.

bjoern is a library with no command line; the module is imported from the working directory
(then this directory), and bjoern serves it on 127.0.0.1:PORT in this one process.

The listening socket gets TCP_NODELAY (Linux passes it on to accepted connections), as
dragoman, gunicorn and bench/hyper-hello set it on theirs: bjoern writes a chunked response's
last chunk in a second write, and with Nagle's algorithm on, each response on a keep-alive
connection then waits for the client's delayed ACK (about 40 ms; 23 requests/s over one
connection, 1,400 over 64). `bjoern.run(app, host, port)` alone measures that stall, not bjoern.
"""

import importlib
import os
import socket
import sys

import bjoern


def main() -> None:
    target, port = sys.argv[1], int(sys.argv[2])
    module, _, name = target.partition(":")
    sys.path.insert(0, os.getcwd())
    application = getattr(importlib.import_module(module), name or "application")
    sock = bjoern.bind_and_listen("127.0.0.1", port)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bjoern.server_run(sock, application)


if __name__ == "__main__":
    main()
