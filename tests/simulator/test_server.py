"""The server: loopback-only binding, ``python -m cdms_api.simulator`` as a process, and many
clients at once."""

from __future__ import annotations

import os
import re
import selectors
import ssl
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import trustme

from cdms_api.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Simulator, SimulatorServer
from cdms_api.simulator.__main__ import main


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_a_non_loopback_host_is_refused(host):
    with pytest.raises(ValueError, match="not a loopback address; pass allow_remote=True"):
        SimulatorServer(Simulator(seed="none"), host=host)


def test_the_command_line_refuses_a_non_loopback_host(capsys):
    assert main(["--host", "0.0.0.0", "--port", "0", "--seed", "none"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cannot start the simulator" in captured.err
    assert "--allow-remote" in captured.err or "allow_remote" in captured.err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_server_serves_and_stops(host):
    with SimulatorServer(Simulator(seed="none"), host=host) as server:
        assert server.port > 0
        assert server.base_url == f"http://{host}:{server.port}/api/data/v9.2/"
        assert server.token_url == f"http://{host}:{server.port}/oauth2/token"
        response = request_token(server.token_url)
        assert response.status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(server.base_url, timeout=2)


def test_a_server_that_never_started_stops_at_once():
    server = SimulatorServer(Simulator(seed="none"))
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(5)
    assert not stopper.is_alive(), "stop() hung on a server that was never started"


def test_stopping_twice_is_harmless():
    server = SimulatorServer(Simulator(seed="none")).start()
    server.stop()
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(5)
    assert not stopper.is_alive()


def read_line(stream, timeout: float) -> str:
    """One line from a child's stdout, waiting at most ``timeout`` seconds."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    try:
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"no complete line within {timeout}s: {line!r}")
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                raise AssertionError(f"the process closed its output: {line!r}")
            line += chunk
    finally:
        selector.close()
    return line.decode()


def test_the_module_runs_as_a_process(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cdms_api.simulator",
            "--port",
            "0",
            "--seed",
            "none",
            "--token-lifetime",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        first = read_line(process.stdout, 30).strip()
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/api/data/v9\.2/", first)
        assert match, first
        base = first
        root = base[: -len("/api/data/v9.2/")]
        second = read_line(process.stdout, 5)
        assert f"{root}/oauth2/token" in second
        assert DEMO_CLIENT_ID in second

        response = request_token(f"{root}/oauth2/token")
        assert response.status_code == 200
        assert response.json()["expires_in"] == 120
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        accounts = requests.get(base + "accounts", headers=headers, timeout=10)
        assert accounts.status_code == 200
        assert accounts.json()["value"] == []  # --seed none
        created = requests.post(
            base + "accounts", json={"name": "From a process"}, headers=headers, timeout=10
        )
        assert created.status_code == 204
        assert requests.get(base + "accounts/$count", headers=headers, timeout=10).text == "1"
        assert process.poll() is None
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode is not None


def test_many_clients_at_once(cdms_simulator):
    threads, operations = 8, 25
    prefix = f"Concurrent {uuid.uuid4().hex[:8]}"
    base = cdms_simulator.base_url

    def count() -> int:
        session = cdms_simulator.session()
        response = session.get(
            base + "accounts", params={"$select": "name", "$filter": f"startswith(name,'{prefix}')"}
        )
        assert response.status_code == 200, response.text
        return len(response.json()["value"])

    def worker(number: int) -> tuple[int, int]:
        session = cdms_simulator.session()
        keys: list[str] = []
        created = deleted = 0
        for i in range(operations):
            step = i % 5
            if step in (0, 1):
                name = f"{prefix} {number}-{i}"
                response = session.post(base + "accounts", json={"name": name})
                assert response.status_code == 204, response.text
                keys.append(response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")"))
                created += 1
            elif step == 2:
                record = session.get(f"{base}accounts({keys[-1]})")
                assert record.status_code == 200, record.text
                response = session.patch(
                    f"{base}accounts({keys[-1]})",
                    json={"numberofemployees": i},
                    headers={"If-Match": record.json()["@odata.etag"]},
                )
                assert response.status_code == 204, response.text
            elif step == 3:
                name = f"{prefix} {number}-{i - 2}"
                response = session.get(
                    base + "accounts",
                    params={"$filter": f"numberofemployees eq {i - 1} and name eq '{name}'"},
                )
                assert response.status_code == 200, response.text
                assert len(response.json()["value"]) == 1
            else:
                response = session.delete(f"{base}accounts({keys.pop(0)})")
                assert response.status_code == 204, response.text
                deleted += 1
        return created, deleted

    before = count()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(worker, range(threads), timeout=60))
    created = sum(c for c, _ in results)
    deleted = sum(d for _, d in results)
    assert (created, deleted) == (threads * 10, threads * 5)
    assert count() == before + created - deleted
    journal = [e for e in cdms_simulator.journal() if e["path"].startswith("/api/")]
    assert sum(e["method"] in ("POST", "PATCH", "DELETE") for e in journal) == threads * 20
    assert {e["status"] for e in journal} <= {200, 204}


def request_token(token_url: str) -> requests.Response:
    """The client-credentials grant with the demo credentials, answered as it is."""
    credentials = {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}
    return requests.post(
        token_url, data={"grant_type": "client_credentials", **credentials}, timeout=10
    )


def test_the_server_speaks_tls_with_a_certificate_the_client_trusts(tmp_path):
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    with SimulatorServer(Simulator(seed="none"), ssl_context=context) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        response = requests.get(server.base_url, timeout=10, verify=str(bundle))
        assert response.status_code == 401  # TLS done; the Web API wants a token
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.base_url, timeout=10)  # the system's CAs do not know it
