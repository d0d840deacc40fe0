"""A threaded HTTP server for the simulator, bound to loopback unless told otherwise."""

from __future__ import annotations

import ssl
import threading

from ..net import is_loopback
from .app import API_PREFIX, Simulator  # first: it names the extra if Werkzeug is missing

# isort: split
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

POLL_INTERVAL_S = 0.05  # how soon stop() is noticed


class QuietHandler(WSGIRequestHandler):
    """Requests are recorded in the simulator's journal; the console stays quiet."""

    def log_request(self, *args, **kwargs) -> None:
        pass


class SimulatorServer:
    """The simulator served on ``host:port`` (port 0: a free one) from a background thread."""

    def __init__(
        self,
        simulator: Simulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ):
        """``ssl_context``: serve HTTPS with it (a client that insists on TLS, such as
        Microsoft's, can then be pointed at the simulator with a certificate it trusts)."""
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"{host} is not a loopback address; pass allow_remote=True to bind it")
        self.simulator = simulator or Simulator()
        self.server: BaseWSGIServer = make_server(
            host,
            port,
            self.simulator,
            threaded=True,
            request_handler=QuietHandler,
            ssl_context=ssl_context,
        )
        self.scheme = "https" if ssl_context else "http"
        self.host, self.port = host, self.server.server_port
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.root_url + "/oauth2/token"

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_S},
            daemon=True,
            name="cdms-simulator",
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket; safe on a server that never started, and
        twice."""
        if self._thread is not None:
            # shutdown() waits for serve_forever() to return: only call it when one runs
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
