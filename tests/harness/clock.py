"""A clock the tests move by hand."""

from __future__ import annotations

from typing import Callable, Optional


class FakeClock:
    """A clock the test moves by hand: Unix seconds, starting at a round number.

    `follower`, when set, is called with every new time: a server in another process
    keeps its clock with the test's (see GranianServer).
    """

    def __init__(self, now: float = 1_700_000_000.0):
        self.follower: Optional[Callable[[float], None]] = None
        self.now = now
        # How far the wall clock was stepped (step_wall) apart from the time that passed.
        self.wall_steps = 0.0

    @property
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, now: float) -> None:
        self._now = now
        if self.follower is not None:
            self.follower(now)

    def __call__(self) -> float:
        return self._now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        """Seconds that passed (tick, or `now` set), which no step of the wall clock moves."""
        return self._now - self.wall_steps

    def server_time(self) -> float:
        """Redis's clock in a test: the time, with none of this host's wall-clock steps."""
        return self.monotonic()

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock alone, as an administrator or NTP does; no time passes."""
        self.wall_steps += seconds
        self.now += seconds
