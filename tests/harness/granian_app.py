"""A memflask app in a real granian process, for the contract suite (tests/contract/).

`python -m tests.harness.granian_app` serves, on 127.0.0.1, with memflask's own granian settings
(memflask.serving.granian.create_server), an app built as a contract test's `app` fixture
builds it: the settings come as JSON in the environment variable SETTINGS_VARIABLE, and
the clock is a frozen one that the test moves. granian runs the app in a worker process,
so the test's FakeClock and store cannot be handed over as they are to in-process
waitress: the worker answers a few control requests instead, under CONTROL_PATH, from
the test that started it only (loopback, and the per-process secret it was given):

- POST reset?now=<unix seconds>: a fresh app (new store, counters and uptime), its
  clock at `now`, so nothing one test did is seen by the next;
- POST clock?now=<unix seconds>: the clock moved, as the test's clock.tick();
- GET peek?key=<key>: the item as Store.peek returns it (JSON, null when absent);
- GET stats: Store.stats().

Only tests import this module: memflask itself has no way to move its clock.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import threading
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qs

from memflask import create_app
from memflask.serving.common import read_settings
from memflask.serving.granian import create_server, prepare_worker

# Not MEMFLASK_...: memflask reads those as its own settings.
SETTINGS_VARIABLE = "CONTRACT_GRANIAN_SETTINGS"
CONTROL_PATH = "/_contract_control/"
SECRET_HEADER = "X-Contract-Secret"
LOOPBACK = frozenset({"127.0.0.1", "::1"})


class ServerClock:
    """The worker's frozen clock: Unix seconds, moved only by a control request."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


class ControlledApp:
    """WSGI: memflask's app as a test's settings build it, and the control requests."""

    def __init__(self, config: Mapping[str, Any], now: float, secret: str):
        self.config = dict(config)
        self.secret = secret
        self.clock = ServerClock(now)
        self.lock = threading.Lock()
        self.app = self.build()

    def build(self) -> Any:
        # As memflask's granian entry points build theirs (load_app, wsgi.py). Each app's
        # shutdown stays registered for the worker's exit: a small entry per test.
        return prepare_worker(create_app({**self.config, "CLOCK": self.clock}))

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(CONTROL_PATH):
            return self.control(environ, start_response)
        return self.app(environ, start_response)

    def control(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        given = environ.get("HTTP_" + SECRET_HEADER.upper().replace("-", "_"), "")
        if environ.get("REMOTE_ADDR") not in LOOPBACK or not hmac.compare_digest(
            given.encode(), self.secret.encode()
        ):
            return answer(start_response, "403 Forbidden", None)
        action = environ["PATH_INFO"][len(CONTROL_PATH) :]
        query = {name: values[0] for name, values in parse_qs(environ["QUERY_STRING"]).items()}
        with self.lock:
            if action == "reset":
                old, self.clock.now = self.app, float(query["now"])
                self.app = self.build()
                old.extensions["memflask"].lifecycle.shutdown()
                return answer(start_response, "204 No Content", None)
            if action == "clock":
                self.clock.now = float(query["now"])
                return answer(start_response, "204 No Content", None)
            store = self.app.extensions["memflask"].store
            if action == "peek":
                item = store.peek(query["key"])
                found = None
                if item is not None:
                    found = {
                        "value": item.value,
                        "expires_at": item.expires_at,
                        "version": item.version,
                    }
                return answer(start_response, "200 OK", found)
            if action == "stats":
                return answer(start_response, "200 OK", dict(store.stats()))
        return answer(start_response, "404 Not Found", None)


def answer(start_response: Callable, status: str, document: Any) -> list[bytes]:
    """A control answer: `document` as JSON, none on 204 and 403."""
    if status.startswith(("204", "403")):
        start_response(status, [])
        return []
    body = json.dumps(document).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def load(settings: Mapping[str, Any]) -> ControlledApp:
    """Build the app in the granian worker (module-level, so a spawned worker can unpickle it)."""
    return ControlledApp(settings["config"], settings["now"], settings["secret"])


def main() -> None:
    """Serve the app that SETTINGS_VARIABLE describes until SIGTERM or SIGINT."""
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    server = create_server(read_settings(settings["config"]))
    server.serve(target_loader=functools.partial(load, settings), wrap_loader=False)


if __name__ == "__main__":
    main()
