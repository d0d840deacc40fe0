"""What every client's run checks, step by step (standard library only: it runs in each
client's own environment)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable

ROOT = os.environ["SIMULATOR_ROOT"]  # https://127.0.0.1:<port>
API = ROOT + "/api/data/v9.2/"
TOKEN_V2 = ROOT + "/simulator/oauth2/v2.0/token"
CLIENT_ID = os.environ["SIMULATOR_CLIENT_ID"]
CLIENT_SECRET = os.environ["SIMULATOR_CLIENT_SECRET"]
CA_BUNDLE = os.environ["SSL_CERT_FILE"]
SCOPE = ROOT + "/.default"

RUN = uuid.uuid4().hex[:8]
#: A name with a quote and text beyond ASCII, unique to this run. No "&": dynamics-client
#: puts filters in the URL unencoded, so an "&" would end its $filter (as on Dataverse).
NAME = f"O'Brien Søn — Café ✓ {RUN}"
PREFIX = f"Compat {RUN}"


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def step(name: str, action: Callable[[], object]) -> object:
    """Run one step; print it as done, or stop the run with the reason."""
    try:
        result = action()
    except Exception as error:  # the report names the step and the client's own error
        print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)
    return result


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
