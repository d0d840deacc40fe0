"""The Django project itself: settings from the environment, the database, the Celery broker,
the management commands."""

import os
import subprocess
import sys
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from core import celery_app
from tests.services import require_service


def test_system_checks_pass():
    out = StringIO()
    call_command("check", "core", "migrator", stdout=out)  # the example project's own apps
    assert "no issues" in out.getvalue()


@pytest.mark.django_db
def test_database_is_the_one_configured():
    expected = (
        "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    )
    assert connection.vendor == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_remote_defaults_point_at_the_local_simulator():
    if "CDMS_BASE_URL" in os.environ:
        pytest.skip("CDMS_BASE_URL is set in this environment")
    assert settings.CDMS["BASE_URL"] == "http://127.0.0.1:8765/api/data/v9.2/"
    assert settings.CDMS["AUTH"]["TOKEN_URL"] == "http://127.0.0.1:8765/oauth2/token"


def test_celery_reaches_its_redis_broker():
    broker = urlsplit(celery_app.conf.broker_url)
    assert broker.scheme == "redis"
    require_service("Redis", broker.hostname, broker.port or 6379)
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.connected


@pytest.mark.django_db
def test_demo_command_runs_end_to_end(monkeypatch):
    # in this process: a worker could not reach the test database (an in-memory one on SQLite)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    out = StringIO()
    call_command("demo", stdout=out)
    text = out.getvalue()
    # the ORM story
    assert "-> Acme Holdings (1200), Acme Widgets (85)  [1 remote call]" in text
    assert "filter(name__startswith='Globex') -> [<Organisation: Globex Corporation>]" in text
    assert "get(pk=" in text and ".employees = 1500" in text
    assert "raised ServerError" in text and "local rows named Hooli afterwards: 0" in text
    assert "raised PreconditionFailed (0x80060882)" in text
    assert "remote: GET accounts?$filter=new_ukbased eq true" in text
    assert "count() = 5 [0 remote calls]" in text
    # the resync story
    assert "core.Organisation: incremental in" in text and "0 created, 3 updated, 2 deleted" in text
    assert "[2 remote requests: each model's change feed since its last resync]" in text
    assert "(renamed)', 'Bulk 00001 (renamed)', 'Bulk 00002 (renamed)']  [1 remote request]" in text
    assert "Organisation.objects.count() = 6,010  [1 remote request;" in text
    # the wire story
    assert "-> 412 PRECONDITION FAILED: 0x80060882" in text
    assert "'Batch One' exists afterwards: False" in text
    assert "deleted" in text and "changed Contoso Consulting" in text
    # and how to go on
    assert "`make admin`" in text and "http://127.0.0.1:8000/" in text


@pytest.mark.django_db
def test_the_root_url_opens_the_admin(client):
    assert client.get("/").url == "/admin/"
    assert client.get("/", follow=True).redirect_chain[-1][0].startswith("/admin/login/")


@pytest.mark.django_db
def test_demo_superuser_is_made_once(client):
    out = StringIO()
    call_command("demo_superuser", stdout=out)
    call_command("demo_superuser", stdout=out)
    assert out.getvalue().splitlines() == [
        "superuser admin created, password admin",
        "superuser admin exists",
    ]
    assert client.login(username="admin", password="admin")


def test_manage_py_cdms_simulator_serves_and_prints_its_url():
    process = subprocess.Popen(
        [sys.executable, "manage.py", "cdms_simulator", "--port", "0", "--seed", "none"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=settings.BASE_DIR,
    )
    try:
        first_line = process.stdout.readline().strip()
        assert first_line.startswith("http://127.0.0.1:")
        assert first_line.endswith("/api/data/v9.2/")
    finally:
        process.kill()
        process.wait(timeout=10)
