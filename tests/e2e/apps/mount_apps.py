"""WSGI applications for `mount`: each says who it is and what SCRIPT_NAME and PATH_INFO it
got; `links` builds its URLs from SCRIPT_NAME, as Flask's url_for and Django's reverse do."""

import json


def _reporter(name):
    def app(environ, start_response):
        body = json.dumps(
            {
                "app": name,
                "script_name": environ["SCRIPT_NAME"],
                "path_info": environ["PATH_INFO"],
                "query": environ.get("QUERY_STRING", ""),
                "request_uri": environ.get("REQUEST_URI", ""),
                "body": environ["wsgi.input"].read().decode("latin-1"),
            }
        ).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


main = _reporter("main")
app1 = _reporter("app1")
admin = _reporter("admin")
application = _reporter("mount_apps")


def links(environ, start_response):
    """A page that links and redirects within its own application, wherever it is mounted."""
    root = environ["SCRIPT_NAME"]
    if environ["PATH_INFO"] in ("", "/"):
        start_response("302 Found", [("Location", f"{root}/login"), ("Content-Length", "0")])
        return [b""]
    body = f'<a href="{root}/logout">log out</a> of {root or "/"}'.encode()
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]
