"""Settings of the example project, read from the environment with local defaults:
SQLite and the CRM simulator on 127.0.0.1:8765 unless told otherwise."""

import os
from pathlib import Path

import dj_database_url

from cdms_api.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-local-development-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "migrator",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "core.urls"
WSGI_APPLICATION = "core.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Resync workers write while requests read: each transaction takes the write lock when it
    # begins, and waits for it, rather than failing when it finds it taken later on; in WAL
    # mode readers do not wait for a writer, and a commit needs no sync to disk
    # (docs/operations.md: "The local database"). The tests' database is a file, not
    # memory, so that a worker process they start shares it.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A commit does not wait for its WAL record to reach the disk: this database is a cache
    # of the CRM (docs/operations.md: "The local database").
    DATABASES["default"]["OPTIONS"] = {"options": "-c synchronous_commit=off"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

SIMULATOR_URL = os.environ.get("CDMS_SIMULATOR_URL", "http://127.0.0.1:8765")
CDMS = {
    "BASE_URL": os.environ.get("CDMS_BASE_URL", f"{SIMULATOR_URL}/api/data/v9.2/"),
    "AUTH": {
        "TOKEN_URL": os.environ.get("CDMS_TOKEN_URL", f"{SIMULATOR_URL}/oauth2/token"),
        "CLIENT_ID": os.environ.get("CDMS_CLIENT_ID", DEMO_CLIENT_ID),
        "CLIENT_SECRET": os.environ.get("CDMS_CLIENT_SECRET", DEMO_CLIENT_SECRET),
        "SCOPE": os.environ.get("CDMS_SCOPE", ""),
    },
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/1")
CELERY_TASK_SERIALIZER = "json"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "cdms_api": {"handlers": ["console"], "level": os.environ.get("CDMS_LOG_LEVEL", "WARNING")},
        "migrator": {"handlers": ["console"], "level": os.environ.get("CDMS_LOG_LEVEL", "WARNING")},
    },
}
