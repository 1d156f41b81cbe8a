"""An application wrapped in wsgiref.validate.validator, with its warnings turned into errors:
any PEP 3333 slip by the server shows up as a 500 and an AssertionError in the log."""

import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def inner(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body) + 3))]
    )
    return [b"ok:", body]


application = validator(inner)
