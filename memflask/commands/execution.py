"""Running one command: validate, apply, and every refusal turned into its answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import Refusal, Unavailable
from ..store import Store, StoreUnavailable, WriteOutcomeUnknown
from .params import Params
from .result import Result, refused

if TYPE_CHECKING:
    from .base import Command


def run(command: type[Command], store: Store, params: Params) -> Result:
    """Validate and apply one command, turning a refusal into its error result."""
    params.context.counts.add(command.name)
    instance = command()
    try:
        args = instance.validate(params)
        grant = params.grant
        if grant is not None and not grant.admin:
            instance.authorize(args, grant)
        return instance.apply(store, args)
    except Refusal as error:
        return refused(error)
    except WriteOutcomeUnknown as error:
        return refused(
            Unavailable(f"the store did not confirm the write; its outcome is unknown ({error})")
        )
    except StoreUnavailable as error:
        return refused(Unavailable(f"the store is unavailable; nothing was done ({error})"))
