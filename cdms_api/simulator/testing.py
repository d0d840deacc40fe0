"""A handle on a running simulator for tests: URLs, credentials, a bearer-token session and
the ``/__admin/`` control API, all over HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import simplejson

from .app import API_PREFIX
from .auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


class SimulatorHandle:
    client_id = DEMO_CLIENT_ID
    client_secret = DEMO_CLIENT_SECRET

    def __init__(self, root_url: str):
        """``root_url``: the server's scheme, host and port, e.g. ``http://127.0.0.1:8765``."""
        self.root_url = root_url.rstrip("/")
        self.base_url = self.root_url + API_PREFIX
        self.token_url = self.root_url + "/oauth2/token"
        self._admin = requests.Session()

    def client_settings(self, **more: Any) -> dict[str, Any]:
        """Settings of a client of this simulator, in the shape ``CDMSClient.from_settings``
        (and a Django project's ``settings.CDMS``) takes, with ``more`` added."""
        return {
            "BASE_URL": self.base_url,
            "AUTH": {
                "TOKEN_URL": self.token_url,
                "CLIENT_ID": self.client_id,
                "CLIENT_SECRET": self.client_secret,
            },
            **more,
        }

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        """Decimals travel as exact JSON numbers, as the Web API writes them."""
        response = self._admin.request(
            method,
            f"{self.root_url}/__admin/{path}",
            data=None if body is None else simplejson.dumps(body, use_decimal=True),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def token(self) -> str:
        response = requests.post(
            self.token_url,
            timeout=10,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def session(self) -> requests.Session:
        """A plain ``requests`` session that sends a valid bearer token."""
        session = requests.Session()
        session.headers.update(
            {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        )
        return session

    def reset(self) -> None:
        self._call("POST", "reset")

    def add_faults(self, *rules: dict) -> None:
        self._call("POST", "faults", list(rules))

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def journal(self) -> list[dict]:
        return self._call("GET", "requests")["requests"]

    def clear_journal(self) -> None:
        self._call("DELETE", "requests")

    def throttle(self, limit: int | None, window_s: float = 300, **limits: float | None) -> None:
        """Per-user limits: ``limit`` requests per ``window_s``, and ``execution_s`` seconds of
        execution per window and ``concurrency`` requests at once (None: no such limit).
        ``throttle(None)`` lifts them all."""
        if limit is None and not any(v is not None for v in limits.values()):
            self._call("DELETE", "throttle")
        else:
            self._call("POST", "throttle", {"limit": limit, "window_s": window_s, **limits})

    def tokens(self, lifetime_s: float | None = None, expire_all: bool = False) -> None:
        body: dict[str, Any] = {"expire_all": expire_all}
        if lifetime_s is not None:
            body["lifetime_s"] = lifetime_s
        self._call("POST", "tokens", body)

    def register_certificate(self, client_id: str, pem: str) -> None:
        """Let ``client_id`` sign in with assertions signed by this certificate's key."""
        self._call("POST", "certificates", {"client_id": client_id, "certificate": pem})

    def change_tracking(self, entity_set: str, enabled: bool) -> None:
        """Turn the entity set's change tracking on or off, until the next reset."""
        self._call("POST", f"changes/{entity_set}", {"tracking": enabled})

    def expire_changes(self, entity_set: str) -> None:
        """Expire the entity set's change log: every delta link issued so far is refused."""
        self._call("POST", f"changes/{entity_set}", {"expire": True})

    def load(self, entity_set: str, records: list[dict]) -> list[str]:
        """Create many records at once (same validation as POST); returns their keys."""
        return self._call("POST", f"load/{entity_set}", records)["keys"]


@contextmanager
def simulator_process(seed: str = "none", *options: str) -> Iterator[SimulatorHandle]:
    """A simulator in a process of its own (``python -m cdms_api.simulator`` on a free port,
    with more command line ``options``), so that neither its CPU time nor its memory counts for
    the caller's; ended on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cdms_api.simulator", "--port", "0", "--seed", seed, *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"the simulator did not start: {base_url!r}")
        yield SimulatorHandle(base_url.split(API_PREFIX)[0])
    finally:
        process.kill()
        process.wait(timeout=10)
