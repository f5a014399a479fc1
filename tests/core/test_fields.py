"""memflask/core/fields.py: query strings, form and JSON bodies, read strictly as UTF-8."""

from __future__ import annotations

import json

import pytest

from memflask.core.errors import DuplicateParameter, InvalidEncoding, InvalidJson, TooManyParameters
from memflask.core.fields import UNQUOTE_CHUNK, parse_form, parse_json


@pytest.mark.parametrize(
    ("data", "values"),
    [
        (b"", {}),
        (b"key=a&value=b", {"key": ["a"], "value": ["b"]}),
        (b"key=a&key=b", {"key": ["a", "b"]}),
        (b"flag&&x=", {"flag": [""], "x": [""]}),
        (b"v=a+b%20c%C3%A9", {"v": ["a b c\u00e9"]}),
        (b"k%3D1=%26", {"k=1": ["&"]}),
    ],
)
def test_a_form_is_split_and_decoded(data, values):
    assert parse_form(data, max_fields=10) == values


def test_a_long_field_is_decoded_a_chunk_at_a_time_whole():
    value = "\u00e9" * UNQUOTE_CHUNK  # escapes across many chunk edges
    data = b"v=" + "".join(f"%{byte:02X}" for byte in value.encode()).encode()
    assert parse_form(data, max_fields=1) == {"v": [value]}


@pytest.mark.parametrize("data", [b"v=%FF", b"v=\xff", b"%C3=1"])
def test_a_form_that_is_not_utf8_is_refused(data):
    with pytest.raises(InvalidEncoding):
        parse_form(data, max_fields=10)


def test_a_form_with_more_fields_than_allowed_is_refused_before_parsing():
    with pytest.raises(TooManyParameters):
        parse_form(b"a=1&" * 10, max_fields=10)


def test_a_json_body_is_read():
    body = json.dumps({"key": "k", "value": "\u00e9", "expire": 10}).encode()
    assert parse_json(body, max_fields=10) == {"key": "k", "value": "\u00e9", "expire": 10}


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (b'{"key": "a", "key": "b"}', DuplicateParameter),
        (b"{not json", InvalidJson),
        ('{"key": "k"}'.encode("utf-16"), InvalidEncoding),
        (b'{"key": "\xff"}', InvalidEncoding),
    ],
)
def test_a_json_body_that_is_ambiguous_or_not_utf8_is_refused(body, refusal):
    with pytest.raises(refusal):
        parse_json(body, max_fields=10)
