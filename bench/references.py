"""The reference apps memflask is measured against, on the same server settings.

Each serves the same routes as the benchmark drives (/get, /set, /increment, /stats)
from a plain dict behind a lock, with no validation: the cost of the stack alone. The
Redis section adds two more: a bare WSGI callable making one redis-py call per request,
the least any Python app on Redis pays, and its twin with the threads' calls pipelined.
"""

from __future__ import annotations

import json
import os
import threading
from urllib.parse import parse_qs

from flask import Flask, Response, request

from memflask.config import DEFAULTS
from memflask.store.redis.connection import connect


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
        path, query = environ["PATH_INFO"], parse_query(environ)
        if path == "/get":
            value = data.get(query.get("key", ""))
            return found(start_response, None if value is None else value.encode())
        if path == "/set":
            with lock:
                data[query["key"]] = query["value"]
            return no_content(start_response)
        if path == "/increment":
            with lock:
                data[query["key"]] = str(int(data.get(query["key"], "0")) + int(query["value"]))
            return no_content(start_response)
        if path == "/stats":
            body = json.dumps({"keyCount": len(data)}).encode()
            return found(start_response, body, "application/json")
        return found(start_response, None)

    return app


def bare_redis_app():
    """A WSGI callable doing one redis-py call per request on the Redis at
    MEMFLASK_STORE_URL: `GET` for /get, `SET` for /set. The ceiling of a Python app on
    redis-py, on the same server settings.

    One client shared by the server's threads, with memflask's redis-py settings
    (memflask/store/redis/connection.py: a blocking pool of 64 connections, its default
    timeout, no retries); no script, no prefix, no breaker: memflask's own work on Redis
    is what it leaves out.
    """
    client = redis_client()
    return redis_routes(client.execute_command, client)


def bare_redis_pipelined_app():
    """The same callable with its threads' calls pipelined: a call made while another
    thread's round trip is under way waits, and goes with every other waiting call in the
    next round trip (AutoPipeline). The ceiling of the other client shape a Python app on
    redis-py could take: fewer round trips and socket calls, at the price of a wait and a
    hand-over between threads."""
    client = redis_client()
    return redis_routes(AutoPipeline(client).call, client)


def redis_client():
    return connect(os.environ["MEMFLASK_STORE_URL"], DEFAULTS["STORE_TIMEOUT_MS"] / 1000)


def redis_routes(call, client):
    """/get and /set as one Redis command each, sent by `call(*command)`."""

    def app(environ, start_response):
        path, query = environ["PATH_INFO"], parse_query(environ)
        if path == "/get":
            return found(start_response, call("GET", query.get("key", "")))
        if path == "/set":
            call("SET", query["key"], query["value"])
            return no_content(start_response)
        if path == "/stats":  # what the bench asks to know the app is up; not measured
            body = json.dumps({"keyCount": client.dbsize()}).encode()
            return found(start_response, body, "application/json")
        return found(start_response, None)

    return app


class PendingCall:
    """One thread's command waiting in an AutoPipeline: its answer, or the turn to send."""

    __slots__ = ("answer", "command", "done", "sends")

    def __init__(self, command: tuple):
        self.command = command
        self.done = threading.Event()
        self.answer: object = None
        self.sends = False  # woken to send the next round trip, its own call included


class AutoPipeline:
    """Commands from concurrent threads sent together, one round trip at a time.

    A thread that finds no round trip under way sends its command at once; one that finds
    one waits. The sender takes every waiting command into one pipeline, hands each its
    answer (an error is its caller's alone), and passes the turn to the first command that
    arrived meanwhile, so no thread sends for others for longer than one round trip.
    """

    def __init__(self, client):
        self.client = client
        self.lock = threading.Lock()
        self.waiting: list[PendingCall] = []
        self.sending = False

    def call(self, *command):
        mine = PendingCall(command)
        with self.lock:
            self.waiting.append(mine)
            mine.sends = not self.sending
            self.sending = True
        if not mine.sends:
            mine.done.wait()
        if mine.sends:
            self._send_waiting(mine)
        if isinstance(mine.answer, Exception):
            raise mine.answer
        return mine.answer

    def _send_waiting(self, mine: PendingCall) -> None:
        with self.lock:
            batch, self.waiting = self.waiting, []
        pipeline = self.client.pipeline(transaction=False)
        for pending in batch:
            pipeline.execute_command(*pending.command)
        try:
            answers = pipeline.execute(raise_on_error=False)
        except Exception as error:  # the round trip failed: every caller in it gets why
            answers = [error] * len(batch)
        with self.lock:
            successor = self.waiting[0] if self.waiting else None
            self.sending = successor is not None
        for pending, answer in zip(batch, answers):
            pending.answer = answer
            if pending is not mine:
                pending.done.set()
        if successor is not None:
            successor.sends = True
            successor.done.set()


def parse_query(environ) -> dict[str, str]:
    """The query string's parameters, the first value of each."""
    return {name: values[0] for name, values in parse_qs(environ["QUERY_STRING"]).items()}


def no_content(start_response):
    """A 204, as memflask and the original answer it: it ends with its headers (RFC 9110
    forbids Content-Length on it)."""
    start_response("204 No Content", [])
    return []


def found(start_response, body, content_type="text/plain"):
    """A 200 with `body` (bytes), or a 404 for None."""
    status = "200 OK" if body is not None else "404 Not Found"
    body = body if body is not None else b""
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
