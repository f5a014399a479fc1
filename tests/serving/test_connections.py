"""Many connections: idle, slow and keep-alive clients never lock a new client out."""

from __future__ import annotations

import socket
import time

from memflask.serving.waitress import allow_connection_limit
from tests.serving.test_keep_alive import read_answers

KEEP_ALIVE_CLIENTS = 1000
SLOW_CLIENTS = 150


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def time_a_fresh_healthz(port: int) -> float:
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answers(sock, 1, timeout=10) == [200]
    return time.monotonic() - started


def test_idle_slow_and_keep_alive_clients_leave_room_for_a_new_one(live_server):
    allow_connection_limit()  # this process holds the client ends of every socket
    port = live_server.port
    sockets = []
    try:
        # Slowloris: a request line begun and never finished.
        for _ in range(SLOW_CLIENTS):
            sock = connect(port)
            sock.sendall(b"GET /get?key=k HTTP/1.1\r\nHo")
            sockets.append(sock)
        # A thousand keep-alive clients, each answered and then left open and idle.
        clients = [connect(port) for _ in range(KEEP_ALIVE_CLIENTS)]
        sockets.extend(clients)
        for index, sock in enumerate(clients):
            sock.sendall(
                f"GET /set?key=c{index}&value={index} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            )
        for sock in clients:
            assert read_answers(sock, 1) == [204]
        # The slow clients trickle one more byte each: still active, still unfinished.
        for sock in sockets[:SLOW_CLIENTS]:
            sock.sendall(b"s")
        assert time_a_fresh_healthz(port) < 2.0
        # Every keep-alive client is still served on its own connection.
        for index, sock in enumerate(clients):
            sock.sendall(f"GET /get?key=c{index} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        for sock in clients:
            assert read_answers(sock, 1) == [200]
    finally:
        for sock in sockets:
            sock.close()
