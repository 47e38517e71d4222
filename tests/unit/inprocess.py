"""Serving a tornado app inside the test process, for the unit layer (no processes started)."""

from __future__ import annotations

import socket

from tornado.httpserver import HTTPServer


def listen_on_loopback(server: HTTPServer) -> int:
    """Let ``server`` accept connections on a free loopback port; returns the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    server.add_sockets([sock])
    return sock.getsockname()[1]
