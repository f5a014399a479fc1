"""The HTTP layer: a request in, an answer out, for every verb the registry holds.

`pipeline`, `hotpath`, `state` and `request_log` import no Flask (as Flask's own
`sansio/` folder holds what "can be used by alternative implementations" and "cannot
do any IO"): they run on a WSGI environ, so the WSGI-level hot path and the Flask view
(`api`) take the very same steps. `api`, `openapi`, `metrics` and `dashboard` are the
Flask parts: the blueprint, the /openapi.json document, /metrics and the browser page.
tests/test_imports.py holds the folder to this.
"""
