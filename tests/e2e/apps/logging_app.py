"""An application for the access-log tests: a status, a delay or a size on demand, an
exception, and output through print, logging and wsgi.errors.

- ``/status/N``: answers N with a short body;
- ``/slow/MS``: sleeps MS milliseconds, then 200;
- ``/size/N``: N bytes of body (0: an empty body);
- ``/boom``: raises (a 500);
- ``/talk``: prints a line, logs one with ``logging`` and writes one to ``wsgi.errors``;
- anything else: ``hello``.
"""

import logging
import time

log = logging.getLogger("logging_app")


def application(environ, start_response):
    parts = environ["PATH_INFO"].strip("/").split("/")
    status, body = "200 OK", b"hello"
    if parts[0] == "status" and len(parts) == 2:
        status, body = f"{int(parts[1])} Chosen", b"chosen status"
    elif parts[0] == "slow" and len(parts) == 2:
        time.sleep(int(parts[1]) / 1000)
        body = b"slept"
    elif parts[0] == "size" and len(parts) == 2:
        body = b"x" * int(parts[1])
    elif parts[0] == "boom":
        raise RuntimeError("boom, as asked")
    elif parts[0] == "talk":
        print("printed by the application")
        log.warning("logged by the application")
        environ["wsgi.errors"].write("written to wsgi.errors\n")
        body = b"talked"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
