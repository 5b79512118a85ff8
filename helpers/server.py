"""The web page's HTTP server: Werkzeug's threaded server with deadlines, so that slow
or silent clients cannot hold its threads (`helpers.app` serves the page on it).

A connection that sends nothing for CONNECTION_TIMEOUT_SECONDS is closed; one whose
request line and headers are not all in HEADER_SECONDS after the request started is
closed too, however slowly it trickles them; at most MAX_CONNECTIONS are served at once
(one thread each), the next waits in the listening queue.
"""

from __future__ import annotations

import io
import socket
import threading
import time

from werkzeug.serving import (
    ThreadedWSGIServer,
    WSGIRequestHandler,
    select_address_family,
)

CONNECTION_TIMEOUT_SECONDS = 20
HEADER_SECONDS = 10
MAX_CONNECTIONS = 32


class HeaderDeadline(socket.SocketIO):
    """A connection's reader that, while `deadline` is set, waits no later than it."""

    deadline: float | None = None

    def readinto(self, buffer) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request's headers took too long")
            self._sock.settimeout(min(left, CONNECTION_TIMEOUT_SECONDS))
        return super().readinto(buffer)


class TimedHandler(WSGIRequestHandler):
    """Werkzeug's request handler with a socket timeout and a deadline for the request
    line and headers (HEADER_SECONDS from when the request starts)."""

    timeout = CONNECTION_TIMEOUT_SECONDS

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.reader = HeaderDeadline(self.connection, "rb")
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self) -> None:
        self.reader.deadline = time.monotonic() + HEADER_SECONDS
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        self.reader.deadline = None
        self.connection.settimeout(self.timeout)
        return parsed


class Server(ThreadedWSGIServer):
    """Werkzeug's threaded server with at most MAX_CONNECTIONS connections served at
    once; the next waits in the listening queue until one ends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        self.slots.acquire()
        try:
            super().process_request(request, client_address)  # starts its thread
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def serve(app, listening: socket.socket) -> Server:
    """The server of `app` on an already listening socket (`listen`)."""
    host, port = listening.getsockname()[:2]
    return Server(host, port, app, TimedHandler, fd=listening.fileno())


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port; OSError if the port is taken."""
    return socket.create_server((host, port), family=select_address_family(host, port))
