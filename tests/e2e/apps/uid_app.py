"""Reports the user and group it runs as. Imports only `os`, which the interpreter has already
loaded: a worker that dropped to `nobody` may not be able to read the stdlib from disk."""

import os


def application(environ, start_response):
    body = f"uid {os.getuid()} gid {os.getgid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
