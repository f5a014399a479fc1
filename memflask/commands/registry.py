"""The verb -> command class mapping that the HTTP layer dispatches through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator, Optional

if TYPE_CHECKING:
    from .base import Command


class Registry:
    """Command classes by verb name; `register` (also a class decorator) refuses duplicates."""

    def __init__(self, commands: Iterable[type[Command]] = ()):
        self._commands: dict[str, type[Command]] = {}
        for command in commands:
            self.register(command)

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

    def __contains__(self, name: str) -> bool:
        return name in self._commands

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._commands))

    def commands(self) -> list[type[Command]]:
        """The command classes, by verb name."""
        return [self._commands[name] for name in self]
