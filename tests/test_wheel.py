"""The library as a downstream project gets it: ``make dist``'s wheel, installed with the
``simulator`` extra only into a fresh virtual environment, and a throwaway project of two
synced models (``tests/downstream_project``) whose own tests run against the simulator through
the library's pytest plugin. Also: what the lean install leaves out says which extra to add."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "downstream_project"
UV = Path(sys.executable).with_name("uv")

pytestmark = pytest.mark.wheel


def run(*command: str | Path, cwd: Path = ROOT, env: dict | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel (and its simulator extra), pytest and
    pytest-django at the versions of the lock; returns its python."""
    where = tmp_path_factory.mktemp("wheel")
    run("make", "dist", "DIST=" + str(where / "dist"))
    [wheel] = (where / "dist").glob("django_cdms-*.whl")
    run(UV, "venv", "--quiet", "--python", sys.executable, where / "venv")
    python = where / "venv" / "bin" / "python"
    lock = ROOT / "requirements.lock"
    run(UV, "pip", "install", "--quiet", "--python", python, "-c", lock,
        f"{wheel}[simulator]", "pytest", "pytest-django")  # fmt: skip
    return python


def test_the_wheel_installs_only_the_runtime_dependencies(installed):
    installed_names = run(UV, "pip", "freeze", "--python", installed).lower()
    assert "django-cdms @ file" in installed_names
    for absent in ("celery", "redis", "kombu", "cryptography", "prometheus"):
        assert absent not in installed_names, absent
    for present in ("django==", "requests-oauthlib==", "werkzeug==", "odata-query=="):
        assert present in installed_names, present


def test_the_wheel_carries_its_typing_marker_and_licence(installed):
    metadata = run(
        installed,
        "-c",
        "import importlib.metadata as m, pathlib, cdms_api, migrator;"
        "d = m.distribution('django-cdms');"
        "print(d.metadata['License-Expression'], d.metadata['License-File']);"
        "print(*d.metadata.get_all('Classifier'), sep='\\n');"
        "print(*(str(f) for f in d.files if f.name == 'py.typed'), sep='\\n');"
        "print(next(f for f in d.files if f.name == 'LICENSE').read_text().splitlines()[0])",
    )
    assert metadata.splitlines()[0] == "MIT LICENSE"
    assert "Framework :: Django :: 5.2" in metadata and "Typing :: Typed" in metadata
    assert "cdms_api/py.typed" in metadata and "migrator/py.typed" in metadata
    assert metadata.splitlines()[-1] == "MIT License"


def test_the_client_imports_without_django(installed):
    out = run(
        installed,
        "-c",
        "import sys, cdms_api.client, cdms_api.session, cdms_api.auth;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))",
    )
    assert out.strip() == "[]"


def test_a_part_whose_extra_is_missing_names_it(installed):
    done = subprocess.run(
        [installed, "-c", "import migrator.tasks"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "pip install 'django-cdms[celery]'" in done.stderr


def test_a_downstream_project_runs_its_tests_against_the_simulator(installed, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    out = run(installed, "-m", "pytest", "-q", cwd=project, env=env)
    assert "4 passed" in out, out
