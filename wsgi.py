"""The WSGI entry point for production: `waitress-serve --listen=127.0.0.1:8000 wsgi:app`.

Also `granian --interface wsgi wsgi:app` and `flask --app wsgi run`.
"""

from memflask import create_app
from memflask.serve import adopt_waitress_serve

# waitress-serve imports this module before it builds its server: from here on it serves
# memflask as `python -m memflask` does (limits, keep-alive, graceful SIGTERM; see
# memflask.serve.adopt_waitress_serve). Other servers never call waitress.create_server.
adopt_waitress_serve()

app = create_app()
