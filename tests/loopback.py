"""Real HTTP servers on loopback for the tests (the shared app's, the fake platforms', a wallet's push receiver, an
agency's callback), each served from a daemon thread and stopped with its socket closed."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer


class LoopbackServer:
    """Serves `server` (an http.server or werkzeug server bound to 127.0.0.1) until `close`, or for a `with` block.

    A request handler class may be given instead of a server: it is served by a threaded http.server on a free port.
    """

    def __init__(self, server: HTTPServer | type[BaseHTTPRequestHandler]) -> None:
        if isinstance(server, type):
            server = ThreadingHTTPServer(("127.0.0.1", 0), server)
        self.server = server
        self.port: int = server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
