"""`python -m bench.profile [TARGET] [--batch N]`: where one request's time goes, in-process.

Calls the app's WSGI callable directly (no server, no socket), as waitress or granian
would, and prints the time per request and a cProfile of its functions. With `--batch N`
it profiles a POST /batch of N `get`s instead of TARGET (default `/get?key=k0`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time

from werkzeug.test import EnvironBuilder

from memflask import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("target", nargs="?", default="/get?key=k0")
    parser.add_argument("--batch", type=int, help="profile a /batch of this many gets")
    parser.add_argument("--requests", type=int, default=20_000)
    options = parser.parse_args()
    app = create_app({"APP_ENV": "production"})
    client = app.test_client()
    for number in range(max(options.batch or 0, 1)):
        client.get(f"/set?key=k{number}&value=v")
    body = b""
    if options.batch:
        commands = [{"verb": "get", "key": f"k{number}"} for number in range(options.batch)]
        body = json.dumps(commands).encode()
        builder = EnvironBuilder(
            path="/batch", method="POST", data=body, content_type="application/json"
        )
    else:
        builder = EnvironBuilder(path=options.target)
    environ = builder.get_environ()
    environ["HTTP_HOST"] = "127.0.0.1"
    requests = options.requests // (options.batch or 1)

    def answer(count: int) -> None:
        for _ in range(count):
            fresh = dict(environ, **{"wsgi.input": io.BytesIO(body)})
            b"".join(app(fresh, lambda status, headers: None))

    answer(max(1, requests // 20))  # warm up
    started = time.perf_counter()
    answer(requests)
    print(f"{(time.perf_counter() - started) / requests * 1e6:.1f} us per request")
    profiler = cProfile.Profile()
    profiler.runcall(answer, requests)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
