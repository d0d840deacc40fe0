"""The admin in headless Chromium (Debian's ``chromium``, ``make browser``) driven by
Playwright, against the live server and the per-test simulator. Each step of a test saves a
screenshot in the test's output folder, and the page's HTML too when the step fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import sync_playwright

from tests.e2e.steps import Steps
from tests.migrator.crm import CRM
from tests.resync_support import crm_client

CHROMIUM = "/usr/bin/chromium"
#: without the background services' flags Chromium's own connections fail on a closed network
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: set to a folder to keep the screenshots there (docs/images/admin is made so)
OUTPUT = os.environ.get("CDMS_E2E_OUTPUT")


def require_browser() -> None:
    if shutil.which(CHROMIUM) is None:
        message = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    """Chromium, for one module's tests. Playwright's sync API keeps an event loop running in
    this thread, where Django then refuses database calls: the tests' own calls are plain
    synchronous ones, so they are allowed while the browser is open, and only then."""
    require_browser()
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def crm(cdms_simulator_settings, transactional_db) -> Iterator[CRM]:
    """The live server's project on the per-test simulator, and the remote as another user
    changes it."""
    client = crm_client(cdms_simulator_settings)
    yield CRM(client)
    client.close()


@pytest.fixture
def admin_user_password(transactional_db) -> tuple[str, str]:
    User.objects.create_superuser("admin", "admin@example.com", "secret")
    return "admin", "secret"


@pytest.fixture
def steps(browser, live_server, crm, request, tmp_path) -> Iterator[Steps]:
    folder = Path(OUTPUT) / request.node.name if OUTPUT else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield Steps(page, live_server.url, folder)
    context.close()
