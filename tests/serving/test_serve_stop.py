"""GracefulServer.stop(): safe in every state of the server, from any thread.

A CI run once failed with `OSError: [Errno 9] Bad file descriptor` from stop(): the
loop thread saw the stop flag on its own timeout and closed every socket, trigger
included, before stop() pulled the trigger. Writing to a closed descriptor is worse than
an error: once the number is reused, the byte lands in some other file or socket.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from memflask.serving.waitress import GracefulServer

# Bound on every wait, in seconds: far above what a healthy stop takes.
WAIT = 10
# Bounds for the test that stops from several threads at once.
ROUNDS = 30
MAX_CALLS_PER_THREAD = 100_000
CALLS_AFTER_RUN_RETURNED = 3


class RunInThread:
    """`server.run()` in a daemon thread, keeping what it raised."""

    def __init__(self, server: GracefulServer):
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(server,), daemon=True)

    def _run(self, server: GracefulServer) -> None:
        try:
            server.run()
        except BaseException as error:
            self.errors.append(error)

    def start(self) -> RunInThread:
        self.thread.start()
        return self

    @property
    def returned(self) -> bool:
        return self.thread.ident is not None and not self.thread.is_alive()

    def wait(self) -> None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "run() did not return"
        assert self.errors == []


class StopFlagThatLetsRunFinish(threading.Event):
    """A stop flag whose set() returns only once `run` has returned.

    stop() sets its flag, then wakes the loop. With this flag, the loop thread always
    wins the race between the two: it sees the flag on its own timeout and closes every
    socket before stop() goes on, as it did by chance in the failed CI run.
    """

    def __init__(self, running: RunInThread):
        super().__init__()
        self.running = running

    def set(self) -> None:
        super().set()
        self.running.thread.join(WAIT)


def loopback_server(app) -> GracefulServer:
    return GracefulServer(app, host="127.0.0.1", port=0)


def assert_every_socket_closed(server: GracefulServer) -> None:
    assert server.server._map == {}
    assert server.server.socket is None
    assert server.server.trigger._closed


def test_stop_does_not_wake_a_loop_that_already_closed_its_sockets(app):
    server = loopback_server(app)
    running = RunInThread(server)
    server._stopping = StopFlagThatLetsRunFinish(running)
    running.start()
    server.stop()  # raised OSError: [Errno 9] Bad file descriptor
    running.wait()
    assert_every_socket_closed(server)


def test_a_request_thread_waking_the_loop_after_run_returned_is_ignored(app):
    # A request thread still running when a stop gave up waiting for it pulls the
    # trigger when it finishes; by then run() has closed it.
    server = loopback_server(app)
    server.stop()
    RunInThread(server).start().wait()
    server.server.pull_trigger()  # raised OSError: [Errno 9] Bad file descriptor
    assert_every_socket_closed(server)


def test_stop_before_run_makes_run_return_at_once(app):
    server = loopback_server(app)
    server.stop()
    RunInThread(server).start().wait()
    assert_every_socket_closed(server)


def test_stop_after_run_returned_does_nothing_however_often(app):
    server = loopback_server(app)
    running = RunInThread(server).start()
    server.stop()
    running.wait()
    for _ in range(3):
        server.stop()
        server.stop(immediately=True)
    assert_every_socket_closed(server)


def test_stop_reentered_in_the_loop_thread_while_it_closes_the_trigger(app):
    # A signal handler runs in the thread it interrupts, between two bytecodes. When
    # that thread runs the loop, the worst moment is inside the closing of the trigger:
    # a stop() that waited there for the closing to finish would wait forever.
    server = loopback_server(app)
    trigger = server.server.trigger
    close_trigger = trigger.close

    def close_interrupted_by_a_second_signal() -> None:
        server.stop(immediately=True)
        close_trigger()

    trigger.close = close_interrupted_by_a_second_signal
    server.stop()
    RunInThread(server).start().wait()
    assert_every_socket_closed(server)


def keep_stopping(
    server: GracefulServer, running: RunInThread, immediately: bool, errors: list
) -> None:
    """Call stop() until run() has returned, and a few times after; bounded in count and time."""
    deadline = time.monotonic() + WAIT
    calls_after_return = 0
    try:
        for _ in range(MAX_CALLS_PER_THREAD):
            server.stop(immediately=immediately)
            if running.returned:
                calls_after_return += 1
            if calls_after_return == CALLS_AFTER_RUN_RETURNED or time.monotonic() > deadline:
                return
    except BaseException as error:
        errors.append(error)


def test_stop_from_other_threads_while_the_loop_exits(app):
    for _ in range(ROUNDS):
        server = loopback_server(app)
        running = RunInThread(server).start()
        errors: list[Optional[BaseException]] = []
        stoppers = [
            threading.Thread(target=keep_stopping, args=(server, running, immediately, errors))
            for immediately in (False, True)
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(WAIT)
            assert not stopper.is_alive(), "stop() did not return"
        running.wait()
        assert errors == []
        assert_every_socket_closed(server)


def test_queue_depth_warnings_are_let_through_once_per_interval():
    import logging

    from memflask.log_filters import EveryFewSeconds

    limiter = EveryFewSeconds(60)

    def record() -> logging.LogRecord:
        return logging.LogRecord(
            "waitress.queue", logging.WARNING, "", 0, "Task queue depth is %d", (3,), None
        )

    assert limiter.filter(record())
    assert not any(limiter.filter(record()) for _ in range(500))
    limiter._next = 0  # the interval has passed
    later = record()
    assert limiter.filter(later)
    assert "500 more such warnings" in later.getMessage()
