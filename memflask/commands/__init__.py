"""The cache verbs, one class each, and the default set an app serves.

A new verb is one class; to serve it by default, add it to DEFAULT_COMMANDS (as Werkzeug
lists its default converters). An app can be given another set: create_app(commands=...).
"""

from __future__ import annotations

from ..core.fields import params_from_json as params_from_json

# The plugin API, re-exported (as Werkzeug's routing/__init__.py does): a plugin verb imports
# from memflask.commands, never from its modules.
from .base import Command as Command
from .base import WriteCommand as WriteCommand
from .batch import Batch
from .context import CommandCounts as CommandCounts
from .context import Context as Context
from .counters import Decrement, Increment
from .execution import run as run
from .keys import DeleteKey, Flush, GetAndTouch, Invalidate, ListKeys, Touch
from .params import Amount as Amount
from .params import Expiry as Expiry
from .params import ExpiryParameter as ExpiryParameter
from .params import Key as Key
from .params import Keys as Keys
from .params import Limit as Limit
from .params import Parameter as Parameter
from .params import Params as Params
from .params import Value as Value
from .reads import Get, MultiGet, TimeToLive
from .registry import Registry as Registry
from .result import TEXT as TEXT
from .result import Result as Result
from .result import json_content as json_content
from .result import refused as refused
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
    # Stampedes: leases (Get's `lease`) and stale-while-revalidate.
    Invalidate,
)

# The default verbs, as a registry (each app builds its own, from DEFAULT_COMMANDS or the
# commands given to create_app).
default_registry = Registry(DEFAULT_COMMANDS)
