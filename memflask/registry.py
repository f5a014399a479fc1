"""The verb -> command class mapping that the HTTP layer dispatches through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

if TYPE_CHECKING:
    from .commands.base import Command


class Registry:
    """Command classes by verb name; `register` is a class decorator that refuses duplicates."""

    def __init__(self, commands: Optional[dict[str, type[Command]]] = None):
        self._commands: dict[str, type[Command]] = dict(commands or {})

    def register(self, command: type[Command]) -> type[Command]:
        """Add `command` under its `name`; usable as a class decorator."""
        name = command.name
        if not name or not name.isidentifier():
            raise ValueError(f"command {command.__qualname__} needs a verb name, got {name!r}")
        if name in self._commands:
            raise ValueError(f"verb {name!r} is already registered")
        self._commands[name] = command
        return command

    def get(self, name: str) -> Optional[type[Command]]:
        """Return the command class for `name`, or None for an unknown verb."""
        return self._commands.get(name)

    def copy(self) -> Registry:
        """Return an independent registry with the same commands (one per app)."""
        return Registry(self._commands)

    def __contains__(self, name: str) -> bool:
        return name in self._commands

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._commands))


# The registry that memflask's own commands register in; each app works on a copy of it.
default_registry = Registry()
