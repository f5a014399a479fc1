"""The dashboard: `GET /` from a browser shows the cache at a glance, live and read-only.

The page and its script are static files served from here; nothing comes from another
site. They hold no data: the script reads `/stats`, `/keys` and `/dashboard/about` with
the bearer token when one is set, so the page itself needs none. A request for `/` that
does not prefer HTML (curl, API clients) gets what it got before the dashboard existed.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import NotFound

from ... import __version__
from ..api import state
from ..pipeline import check_access

bp = Blueprint("dashboard", __name__, static_folder="static", static_url_path="/dashboard")

# Every method reaches `page`, so that a non-browser request for `/` keeps its old answer
# (404, or 401 without the token) instead of a 405.
# Read once: a small file, answered from memory like every other answer.
PAGE = (Path(__file__).parent / "static" / "index.html").read_bytes()
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# The browser may load this page's own files and talk to this server, nothing else.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@bp.route("/", methods=ALL_METHODS, provide_automatic_options=False)
def page() -> Response:
    """The dashboard's page for a browser; for anyone else, `/`'s JSON 404 (or 401)."""
    wants_page = request.method in ("GET", "HEAD") and prefers_html(request.accept_mimetypes)
    if not wants_page:
        check_access(state(), request.environ)
        raise NotFound()
    response = Response(PAGE, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    response.vary.add("Accept")
    return response


@bp.route("/dashboard/about", methods=["GET", "HEAD"], provide_automatic_options=False)
def about() -> Response:
    """What the page shows beside /stats: the backend (never its address) and the version."""
    store_url = current_app.config["STORE_URL"]
    return current_app.json.response(
        {"store": store_url.split("://", 1)[0], "version": __version__}
    )


def prefers_html(accept) -> bool:
    """True for a browser's navigation (text/html ranked above JSON), not for curl's */*."""
    return accept.best_match(["application/json", "text/html"]) == "text/html"
