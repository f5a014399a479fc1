"""What a command answers: a `Result`, and the content descriptions its OpenAPI answers use."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from ..core.errors import Refusal
from ..store import Item

# Content descriptions for the OpenAPI document (a media type -> schema map; None: no body).
TEXT = {"text/plain": {"schema": {"type": "string"}}}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


class Result(NamedTuple):
    """What a command answers: a status and a text value or JSON data, and the item version."""

    status: int = 204
    value: Optional[str] = None
    data: Any = None
    version: Optional[int] = None
    headers: tuple[tuple[str, str], ...] = ()


def refused(error: Refusal) -> Result:
    """The answer to a refusal: its status, its JSON error body and its headers."""
    return Result(error.status, data=error.body, headers=error.headers)


def written(item: Optional[Item], return_value: bool) -> Result:
    """The answer to a write: 204, or 200 with the stored value when the client asked for it."""
    if item is None:
        return Result(204)
    if return_value:
        return Result(200, value=item.value, version=item.version)
    return Result(204, version=item.version)
