"""The WSGI entry point for production: `waitress-serve --listen=127.0.0.1:8000 wsgi:app`."""

from memflask import create_app

app = create_app()
