"""An application that takes BOOT_SECONDS to import (a large Django project does), so a
test can see the server while some of its workers are still starting."""

import os
import time

time.sleep(float(os.environ.get("BOOT_SECONDS", "0")))


def application(environ, start_response):
    body = b"hello\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
