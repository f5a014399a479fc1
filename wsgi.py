"""The WSGI entry point for production: `waitress-serve --listen=127.0.0.1:8000 wsgi:app`.

Also `granian --interface wsgi wsgi:app` and `flask --app wsgi run`.
"""

from memflask import create_app
from memflask.config import ConfigError
from memflask.serving.granian import prepare_worker
from memflask.serving.waitress import adopt_waitress_serve

# waitress-serve imports this module before it builds its server: from here on it serves
# memflask as `python -m memflask` does (limits, connections bounded, keep-alive, graceful
# SIGTERM; see memflask.serving.waitress.adopt_waitress_serve). Other servers never call
# waitress.create_server.
adopt_waitress_serve()

try:
    # In a granian worker: the last snapshot saved at the worker's exit, several workers
    # on the memory store refused (see memflask.serving.granian.prepare_worker).
    # Elsewhere: nothing.
    app = prepare_worker(create_app())
except ConfigError as error:
    # One line and exit 2. Raised on, a bad setting would be a traceback: waitress-serve
    # catches a ValueError while importing and prints it in five lines, exit 1; granian
    # and `flask run --debug`'s reloader print the traceback. A SystemExit passes all three.
    error.exit()
