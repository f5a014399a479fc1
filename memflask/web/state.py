"""The per-app state the web layer serves requests with."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..commands import Context
from ..core.access import Access
from ..store import Store
from .metrics import Metrics

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle


class AppState(NamedTuple):
    """What an app serves requests with, kept in app.extensions["memflask"]: the store, the
    commands' context, access rules, metrics and the life cycle."""

    store: Store
    context: Context
    access: Access
    metrics: Metrics
    lifecycle: Lifecycle
    max_body_bytes: int  # MAX_CONTENT_LENGTH
