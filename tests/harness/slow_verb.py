"""A verb that takes SLOW_SECONDS (1 by default) to answer: the shutdown tests' request in
flight. Imported by the servers those tests start (`from tests.harness.slow_verb import Slow`)."""

from __future__ import annotations

import os
import time

from memflask.commands import Command, Result


class Slow(Command):
    name = "slow"
    writes = True

    def validate(self, params):
        return None

    def apply(self, store, args):
        time.sleep(float(os.environ.get("SLOW_SECONDS", "1")))
        return Result(200, value="finished")
