"""An application that loads, then kills its worker a moment later: a crash loop."""

import os
import threading

threading.Timer(0.3, os._exit, (7,)).start()


def application(environ, start_response):
    start_response("200 OK", [])
    return [b"still alive"]
