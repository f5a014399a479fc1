"""The OpenAPI description stays true: schemathesis drives the app from it.

It must find no 5xx, no status code the document does not list, and no response that
breaks the document's schemas.
"""

from __future__ import annotations

import sys

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memflask import create_app
from memflask.commands import DEFAULT_COMMANDS, default_registry
from tests.commands.test_registry import GetDelete

app = create_app({"APP_ENV": "production", "MAX_VALUE_BYTES": 4096})
schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
# A verb added as one class (tests/commands/test_registry.py) keeps its own description too.
app_with_getdel = create_app(
    {"APP_ENV": "production", "MAX_VALUE_BYTES": 4096}, commands=[*DEFAULT_COMMANDS, GetDelete]
)
getdel_schema = schemathesis.openapi.from_wsgi("/openapi.json", app_with_getdel).include(
    path="/getdel"
)
SKIP_ON_39 = pytest.mark.skipif(
    sys.version_info < (3, 10),
    reason="schemathesis 4.4.4, the last release for Python 3.9, sends form bodies as "
    "'None=...' through its WSGI transport and crashes in Werkzeug's test client",
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@SKIP_ON_39
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_description(case):
    case.call_and_validate(checks=CHECKS)


@SKIP_ON_39
@getdel_schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_verb_added_as_one_class_keeps_its_description(case):
    case.call_and_validate(checks=CHECKS)


def test_every_verb_is_described(client):
    document = client.get("/openapi.json").json
    assert document["openapi"] == "3.1.0"
    for verb in default_registry:
        assert f"/{verb}" in document["paths"], verb
    assert "/healthz" in document["paths"] and "/metrics" in document["paths"]
