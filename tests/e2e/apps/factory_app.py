"""An application made by a factory (`factory_app:create_app()`), as Flask's application
factories are: it reports how often the factory ran in this process, and sys.argv (pyargv)."""

import json
import os
import sys

CALLS = []


def create_app():
    CALLS.append(os.getpid())

    def application(environ, start_response):
        body = json.dumps({"argv": sys.argv, "calls": len(CALLS), "pid": os.getpid()}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return application


def not_a_factory():
    return 42
