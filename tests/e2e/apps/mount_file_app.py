"""A WSGI file for `mount = /prefix=path/to/mount_file_app.py`: the callable is `application`
(or the `callable` option's)."""

import json


def application(environ, start_response):
    body = json.dumps(
        {
            "app": "file",
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
            "query": environ.get("QUERY_STRING", ""),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


app = application
