"""The HTTP server under the status page, bounded for a LAN with strangers on it.

What a hostile neighbour could do to the standard library's threading server,
and what this one does instead:

- A thread per connection, without limit: here at most ``max_connections``
  are served at once; one more is answered ``503`` and closed at once, so the
  daemon never runs out of threads or file descriptors because of the page
  (snapshots, hooks and an image folder need them too).
- A timeout per ``recv``, so a client trickling a header line every few
  seconds holds its thread forever: here a request's line and headers must all
  arrive within ``header_seconds`` of its start. One reaper thread watches
  every connection; a late one has its socket shut down, which ends the read.
- A backlog of 5: here 64.
- Any ``Host``: a web page the owner opens elsewhere can rebind its own name to
  127.0.0.1 and read the page through the owner's browser. Here ``Host`` must
  be a loopback name or address, the address the request came in on, this
  machine's name, the configured host, or a name listed in
  ``http.allowed_hosts``; anything else gets ``421``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BoundedHTTPServer", "BoundedHandler", "host_of"]

_log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1"})
REAP_EVERY = 0.5  # seconds between two looks at the connections still sending their headers
_BUSY = b"too many connections, try again\n"
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY
)


def host_of(header: str | None) -> str | None:
    """The name or address in a ``Host`` header, without its port and brackets, lower case."""
    if header is None:
        return None
    text = header.strip().lower()
    if text.startswith("["):  # [::1]:8080
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


class _HeaderDeadlines:
    """Sockets still sending a request's headers, each with its deadline; one thread cuts off the late."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._due: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.cut = 0  # connections shut down for being late

    def start(self, sock: socket.socket) -> None:
        with self._lock:
            self._due[sock] = time.monotonic() + self.seconds
            if self._thread is None:
                self._thread = threading.Thread(target=self._reap, name="monitor-http-deadlines", daemon=True)
                self._thread.start()

    def done(self, sock: socket.socket) -> None:
        with self._lock:
            self._due.pop(sock, None)

    def stop(self) -> None:
        self._stopped.set()

    def _reap(self) -> None:
        while not self._stopped.wait(REAP_EVERY):
            now = time.monotonic()
            with self._lock:
                late = [sock for sock, due in self._due.items() if due <= now]
                for sock in late:
                    del self._due[sock]
            for sock in late:
                self.cut += 1
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns; the handler ends


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with a cap on connections, a header deadline, a backlog of 64 and a Host check."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_connections: int = 24,
        header_seconds: float = 10.0,
        allowed_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self.deadlines = _HeaderDeadlines(header_seconds)
        self.refused = 0  # connections answered 503 because every slot was taken
        names = {socket.gethostname().lower()}
        names.add(f"{next(iter(names))}.local")
        configured = host_of(address[0])
        if configured and configured not in ("0.0.0.0", "::"):
            names.add(configured)
        self.allowed_hosts = frozenset(LOOPBACK_NAMES | names | {host_of(name) or name for name in allowed_hosts})
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            with contextlib.suppress(OSError):
                request.settimeout(0.5)  # never let one refusal hold up accepting the others
                request.sendall(_REFUSAL)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        self.deadlines.stop()

    def host_allowed(self, header: str | None, local_address: str) -> bool:
        """Whether a request's ``Host`` names this server (see the module's docstring).

        No ``Host`` at all (HTTP/1.0 scripts) is allowed: browsers always send one.
        An IP address is allowed when it is the one the request came in on.
        """
        host = host_of(header)
        if host is None or host in self.allowed_hosts:
            return True
        try:
            asked = ipaddress.ip_address(host)
            local = ipaddress.ip_address(local_address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
            local = local.ipv4_mapped
        return asked == local or asked.is_loopback


class BoundedHandler(BaseHTTPRequestHandler):
    """A request handler that keeps to its server's header deadline and Host check, and answers HEAD."""

    server: BoundedHTTPServer
    timeout = 30  # an idle client gives up its thread after this (the header deadline comes first)

    def handle_one_request(self) -> None:
        self.server.deadlines.start(self.connection)
        try:
            super().handle_one_request()
        finally:
            self.server.deadlines.done(self.connection)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        self.server.deadlines.done(self.connection)  # the headers are in: the route may take its time
        if not self.server.host_allowed(self.headers.get("Host"), self.connection.getsockname()[0]):
            body = b"this server does not answer to that name (add it to http.allowed_hosts)\n"
            self.send_response(421, "Misdirected Request")
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.close_connection = True
            return False
        return True
