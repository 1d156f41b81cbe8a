"""Runs a subprocess, as an application might (a converter, git, a shell command), and answers
with the descriptors it inherited as JSON ({"fd": "target"}), so tests can check that none of
dragoman's own (the event pipe, the listeners) leak into it. `close_fds=False` is what
`os.system` and `os.posix_spawn` do: everything not close-on-exec is passed on."""

import json
import subprocess


def application(environ, start_response):
    listing = subprocess.run(
        ["ls", "-l", "/proc/self/fd"], close_fds=False, capture_output=True, text=True, check=True
    ).stdout
    fds = {}
    for line in listing.splitlines():
        if " -> " in line:
            name, target = line.rsplit(" -> ", 1)
            fds[name.split()[-1]] = target
    body = json.dumps(fds).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
