"""The cache verbs, one class each, and the default set an app serves.

A new verb is one class; to serve it by default, add it to DEFAULT_COMMANDS (as Werkzeug
lists its default converters). An app can be given another set: create_app(commands=...).
"""

from __future__ import annotations

from .base import Command
from .batch import Batch
from .counters import Decrement, Increment
from .keys import DeleteKey, Flush, GetAndTouch, ListKeys, Touch
from .reads import Get, MultiGet, TimeToLive
from .registry import Registry
from .server import Stats
from .storage import Add, Append, CheckAndSet, Prepend, Replace, Set

DEFAULT_COMMANDS: tuple[type[Command], ...] = (
    # The original's verbs.
    Get,
    Set,
    DeleteKey,
    CheckAndSet,
    Increment,
    Decrement,
    Append,
    Prepend,
    Flush,
    Stats,
    # memcached-class verbs.
    Add,
    Replace,
    Touch,
    GetAndTouch,
    TimeToLive,
    MultiGet,
    Batch,
    # Namespaces.
    ListKeys,
)

# The default verbs, as a registry (each app builds its own, from DEFAULT_COMMANDS or the
# commands given to create_app).
default_registry = Registry(DEFAULT_COMMANDS)
