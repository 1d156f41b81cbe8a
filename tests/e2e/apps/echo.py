"""Echoes the environ as JSON: every str value, the wsgi.* flags, the body (base64) and the
sorted list of every key (``environ_keys``, whatever its value).

The conformance corpora and the environ tests compare what reached the application.
A body that cannot be read is a 400, as the corpora's runner expects.
"""

import base64
import json
import os
import threading


def application(environ, start_response):
    try:
        body = environ["wsgi.input"].read()
        status = "200 OK"
    except Exception as exc:  # noqa: BLE001 - any failure to read is the client's: a 400
        body = repr(exc).encode()
        status = "400 Bad Request"
    data = {k: v for k, v in environ.items() if isinstance(v, str)}
    data["wsgi.version"] = list(environ["wsgi.version"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
        data[key] = environ[key]
    data["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    data["errors_type"] = type(environ["wsgi.errors"]).__name__
    data["body_base64"] = base64.b64encode(body).decode()
    data["environ_keys"] = sorted(environ)
    data["pid"] = os.getpid()
    data["thread"] = threading.get_ident()
    out = json.dumps(data).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]
