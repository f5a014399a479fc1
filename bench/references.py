"""The reference apps memflask is measured against, on the same server settings.

Each serves the same routes as the benchmark drives (/get, /set, /increment, /stats)
from a plain dict behind a lock, with no validation: the cost of the stack alone.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import parse_qs

from flask import Flask, Response, request


def minimal_flask_app() -> Flask:
    """The least a Flask app can do per request: a dict lookup in a view."""
    app = Flask(__name__)
    data: dict[str, str] = {}
    lock = threading.Lock()

    @app.route("/get")
    def get() -> Response:
        value = data.get(request.args.get("key", ""))
        if value is None:
            return Response(status=404)
        return Response(value, mimetype="text/plain")

    @app.route("/set")
    def set_() -> Response:
        with lock:
            data[request.args["key"]] = request.args["value"]
        return Response(status=204)

    @app.route("/increment")
    def increment() -> Response:
        key = request.args["key"]
        with lock:
            data[key] = str(int(data.get(key, "0")) + int(request.args["value"]))
        return Response(status=204)

    @app.route("/stats")
    def stats() -> Response:
        return app.json.response({"keyCount": len(data)})

    return app


def bare_wsgi_app():
    """A WSGI callable doing the same: the server's own ceiling."""
    data: dict[str, str] = {}
    lock = threading.Lock()

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        query = {name: values[0] for name, values in parse_qs(environ["QUERY_STRING"]).items()}
        status, body, content_type = "204 No Content", b"", "text/plain"
        if path == "/get":
            value = data.get(query.get("key", ""))
            if value is None:
                status = "404 Not Found"
            else:
                status, body = "200 OK", value.encode()
        elif path == "/set":
            with lock:
                data[query["key"]] = query["value"]
        elif path == "/increment":
            with lock:
                data[query["key"]] = str(int(data.get(query["key"], "0")) + int(query["value"]))
        elif path == "/stats":
            status, content_type = "200 OK", "application/json"
            body = json.dumps({"keyCount": len(data)}).encode()
        else:
            status = "404 Not Found"
        if status.startswith("204"):
            # As memflask and the original answer it: a 204 ends with its headers (RFC 9110
            # forbids Content-Length on it).
            start_response(status, [])
            return []
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app
