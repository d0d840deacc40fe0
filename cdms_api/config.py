"""``CDMSClient.from_settings``: a ``CDMS`` settings dict turned into the client's options.

``AUTH`` names one way to get tokens: ``CLIENT_SECRET``, ``CERTIFICATE`` (a PEM file with the
key and the certificate; ``CERTIFICATE_PASSWORD`` if the key is encrypted) or ``CREDENTIAL``
(an object with azure-core's ``get_token``), with ``CLIENT_ID`` and ``TOKEN_URL`` -- or
``TENANT_ID``, from which the Entra ID v2.0 token URL follows (``AUTHORITY_HOST`` for another
cloud). ``SCOPE`` defaults to the base URL's origin + ``/.default``. ``TOKEN_CACHE`` (a Redis
URL) shares tokens between processes; ``GOVERNOR`` shares the request budget (``URL``,
``REQUESTS``, ``WINDOW_S``, ``EXECUTION_S``, ``CONCURRENCY``, ``MAX_WAIT_S``, ``MARGIN_S``,
``PREFIX`` of its Redis keys)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .auth import default_scope
from .governor import Limits
from .retry import RetryPolicy

AUTHORITY_HOST = "https://login.microsoftonline.com"
#: the GOVERNOR setting's keys and the ``Limits`` fields they set
LIMIT_KEYS = {
    "REQUESTS": "requests",
    "WINDOW_S": "window_s",
    "EXECUTION_S": "execution_s",
    "CONCURRENCY": "concurrency",
}
GOVERNOR_KEYS = {*LIMIT_KEYS, "URL", "MAX_WAIT_S", "MARGIN_S", "PREFIX"}
AUTH_KEYS = {
    "TOKEN_URL",
    "TENANT_ID",
    "AUTHORITY_HOST",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "CERTIFICATE",
    "CERTIFICATE_PASSWORD",
    "CREDENTIAL",
    "SCOPE",
}


def token_url(auth: Mapping[str, Any]) -> str | None:
    if auth.get("TOKEN_URL"):
        return auth["TOKEN_URL"]
    if auth.get("TENANT_ID"):
        host = (auth.get("AUTHORITY_HOST") or AUTHORITY_HOST).rstrip("/")
        return f"{host}/{auth['TENANT_ID']}/oauth2/v2.0/token"
    return None


def client_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    auth = settings.get("AUTH") or {}
    base_url = settings["BASE_URL"]
    scope = auth.get("SCOPE") or default_scope(base_url)
    options: dict[str, Any] = dict(
        token_url=token_url(auth),
        client_id=auth.get("CLIENT_ID"),
        client_secret=auth.get("CLIENT_SECRET"),
        scope=scope,
        credential=auth.get("CREDENTIAL"),
    )
    if auth.get("CERTIFICATE"):
        certificate = importlib.import_module("cdms_api.certificate")  # the certificate extra
        options["credential"] = certificate.ClientCertificate(
            options["token_url"],
            auth.get("CLIENT_ID"),
            auth["CERTIFICATE"],
            scope,
            password=auth.get("CERTIFICATE_PASSWORD"),
        )
    if "://" in (settings.get("TOKEN_CACHE") or ""):
        shared = importlib.import_module("cdms_api.shared")  # the redis extra
        options["token_cache"] = shared.RedisTokenCache(settings["TOKEN_CACHE"])
    if settings.get("GOVERNOR"):
        options["governor"] = governor(settings["GOVERNOR"], base_url, auth)
    if "TIMEOUT" in settings:
        options["timeout"] = tuple(settings["TIMEOUT"])
    if "RETRY" in settings:
        options["retry"] = RetryPolicy(**settings["RETRY"])
    if "PAGE_SIZE" in settings:
        options["page_size"] = settings["PAGE_SIZE"]
    if "KEYS" in settings:
        options["keys"] = settings["KEYS"]
    return options


def governor(config: Mapping[str, Any], base_url: str, auth: Mapping[str, Any]) -> Any:
    """The Redis governor of the user the settings sign in as (the remote's limits are per
    user: one application user, one budget, however many processes)."""
    shared = importlib.import_module("cdms_api.shared")  # the redis extra
    limits = Limits(**{field: config[key] for key, field in LIMIT_KEYS.items() if key in config})
    user = auth.get("CLIENT_ID") or type(auth.get("CREDENTIAL")).__qualname__
    return shared.RedisGovernor(
        config["URL"],
        f"{default_scope(base_url)}|{user}",
        limits,
        prefix=config.get("PREFIX", "cdms:governor:"),
        max_wait_s=float(config.get("MAX_WAIT_S", 300)),
        margin_s=float(config.get("MARGIN_S", 0.25)),
    )
