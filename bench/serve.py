"""`python -m bench.serve NAME PORT`: serve one benchmarked app on waitress.

Every app gets exactly the same waitress settings: memflask's own (serve.waitress_options),
and memflask's fix that keeps connections open after 204 and 304 answers.
"""

from __future__ import annotations

import logging
import sys

import waitress

from memflask import create_app
from memflask.serve import keep_alive_after_bodiless_answers, waitress_options

from .references import bare_wsgi_app, minimal_flask_app

APPS = {
    "memflask": lambda: create_app({"APP_ENV": "production"}),
    "flask-minimal": minimal_flask_app,
    "bare-wsgi": bare_wsgi_app,
}


def main() -> None:
    # Under full load every request waits for a thread a moment; waitress warns each time.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # Plain waitress closes the connection after every 204 (it has no Content-Length):
    # every app here gets memflask's fixed waitress, so none pays for a new connection.
    keep_alive_after_bodiless_answers()
    name, port = sys.argv[1], int(sys.argv[2])
    settings = create_app({"APP_ENV": "production"}).config
    options = {**waitress_options(settings), "host": "127.0.0.1", "port": port}
    waitress.serve(APPS[name](), _quiet=True, **options)


if __name__ == "__main__":
    main()
