"""memflask/core/headers.py: entity tags, Prefer and Authorization, read off header strings."""

from __future__ import annotations

import pytest

from memflask.core.errors import HeaderTooLong, PreconditionFailed
from memflask.core.headers import (
    MAX_CONDITION_HEADER_CHARS,
    NO_CONDITIONS,
    Conditions,
    bearer_token,
    entity_tag,
    prefers_representation,
)
from memflask.store import Item


def item(version: int) -> Item:
    stored = Item("v")
    stored.version = version
    return stored


def test_a_request_without_conditions_parses_nothing():
    assert Conditions.from_headers(None, None) is NO_CONDITIONS
    NO_CONDITIONS.check(None)
    NO_CONDITIONS.check(item(3))


def test_if_match_ignores_weak_tags_and_if_none_match_takes_them():
    conditions = Conditions.from_headers('W/"3", "4"', 'W/"5", "6"')
    assert conditions.if_match == frozenset({"4"})
    assert conditions.if_none_match == frozenset({"5", "6"})


@pytest.mark.parametrize(
    ("if_match", "if_none_match", "current", "allowed"),
    [
        ('"7"', None, 7, True),
        ('"7"', None, 8, False),
        ('"7"', None, None, False),
        ("*", None, 1, True),
        ("*", None, None, False),
        (None, "*", None, True),
        (None, "*", 1, False),
        (None, '"7"', 7, False),
        (None, '"7"', 8, True),
    ],
)
def test_a_write_goes_ahead_only_when_its_conditions_hold(
    if_match, if_none_match, current, allowed
):
    conditions = Conditions.from_headers(if_match, if_none_match)
    current_item = None if current is None else item(current)
    if allowed:
        conditions.check(current_item)
    else:
        with pytest.raises(PreconditionFailed):
            conditions.check(current_item)


def test_a_read_is_not_modified_when_the_client_holds_its_version():
    conditions = Conditions.from_headers(None, f"{entity_tag(9)}, {entity_tag(10)}")
    assert conditions.not_modified(item(9))
    assert not conditions.not_modified(item(11))


def test_a_condition_header_past_the_cap_is_refused_not_cut():
    with pytest.raises(HeaderTooLong):
        Conditions.from_headers(None, " " * MAX_CONDITION_HEADER_CHARS + '"1"')


@pytest.mark.parametrize(
    ("prefer", "wanted"),
    [
        (None, False),
        ("", False),
        ("return=representation", True),
        ("respond-async, RETURN=Representation", True),
        ("wait=5; return=representation", True),
        ("return=minimal", False),
    ],
)
def test_prefer_asks_for_the_stored_value(prefer, wanted):
    assert prefers_representation(prefer) is wanted


@pytest.mark.parametrize(
    ("authorization", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc=def", "abc=def"),
        ("  Bearer abc  ", "abc"),
        ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_the_bearer_token_is_read_off_authorization(authorization, token):
    assert bearer_token(authorization) == token
