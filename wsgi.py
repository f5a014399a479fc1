"""The WSGI entry point for production: `waitress-serve --listen=127.0.0.1:8000 wsgi:app`.

Also `granian --interface wsgi wsgi:app` and `flask --app wsgi run`.
"""

from memflask import create_app
from memflask.serve import keep_alive_after_bodiless_answers

# waitress-serve imports this module before it builds its server: from here on, its
# connections stay open after 204 and 304 answers (see memflask.serve).
keep_alive_after_bodiless_answers()

app = create_app()
