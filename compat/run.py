"""``make compat``: Dataverse's own Python clients, each in its own pinned environment under
``.compat/``, driven through create, read, filter, update, CreateMultiple, $batch, $orderby
with $top, paging, delete and the read of a deleted record against the simulator over HTTPS.

The certificate is made here for the run (trustme); each client trusts it through its bundle
(``SSL_CERT_FILE``/``REQUESTS_CA_BUNDLE``), and verification stays on everywhere."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trustme

from cdms_api.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Simulator, SimulatorServer

HERE = Path(__file__).resolve().parent
ENVIRONMENTS = HERE.parent / ".compat"
CLIENTS = {
    "powerplatform": "drive_powerplatform.py",
    "dataverse-api": "drive_dataverse_api.py",
    "dynamics-client": "drive_dynamics_client.py",
}
TIMEOUT_S = 300


def tls_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def drive(client: str, script: str, environment: dict[str, str]) -> bool:
    python = ENVIRONMENTS / client / "bin" / "python"
    if not python.exists():
        print(f"[{client}] FAIL: no environment at {python.parent.parent} (run make compat)")
        return False
    started = time.monotonic()
    try:
        run = subprocess.run(
            [str(python), str(HERE / script)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        print(f"[{client}] FAIL: no end after {TIMEOUT_S} s")
        return False
    for line in (run.stdout + run.stderr).splitlines():
        print(f"[{client}] {line}")
    print(f"[{client}] {'passed' if run.returncode == 0 else 'FAILED'} in "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip
    return run.returncode == 0


def main() -> int:
    authority = trustme.CA()
    with tempfile.TemporaryDirectory() as folder:
        bundle = Path(folder) / "simulator-ca.pem"
        authority.cert_pem.write_to_path(str(bundle))
        server = SimulatorServer(Simulator(seed="demo"), ssl_context=tls_context(authority))
        with server:
            environment = {
                **os.environ,
                "SIMULATOR_ROOT": server.root_url,
                "SIMULATOR_CLIENT_ID": DEMO_CLIENT_ID,
                "SIMULATOR_CLIENT_SECRET": DEMO_CLIENT_SECRET,
                "SSL_CERT_FILE": str(bundle),
                "REQUESTS_CA_BUNDLE": str(bundle),
                "PYTHONPATH": str(HERE),
            }
            results = {
                client: drive(client, script, environment) for client, script in CLIENTS.items()
            }
    passed = sum(results.values())
    print(f"compat: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
