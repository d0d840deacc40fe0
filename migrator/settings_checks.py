"""``manage.py check``: the ``CDMS`` setting, read as the client will read it, at start-up
rather than at the first query.

Errors: an unknown key (the nearest known one suggested), no base URL, plain HTTP off this
machine, missing or doubled credentials, a token URL of another cloud or tenant than the base
URL's, a part whose extra is not installed. With ``check --deploy`` and ``DEBUG`` off,
warnings for the simulator's public demo credentials and for a base URL on this machine."""

from __future__ import annotations

import difflib
import importlib.util
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks

from cdms_api.config import AUTH_KEYS, GOVERNOR_KEYS, token_url
from cdms_api.net import is_loopback
from cdms_api.simulator.auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

#: every key of ``settings.CDMS`` something reads; a key not here is a typo
KNOWN_KEYS = {
    "BASE_URL",
    "AUTH",
    "TIMEOUT",
    "RETRY",
    "PAGE_SIZE",
    "KEYS",
    "MAX_SYNC_ROWS",
    "ALLOW_FULL_READS",
    "TOKEN_CACHE",
    "GOVERNOR",
    "LOCK_URL",
    "LOCK_PREFIX",
    "RESYNC_LOCK_TTL_S",
    "RESYNC_MAX_BACKOFF_S",
    "RESYNC_MAX_RETRIES",
    "RESYNC_PARTITIONS",
    "WATERMARK_OVERLAP_S",
    "SWEEP_EVERY_S",
    "READS",
    "FRESHNESS_MS",
    "FEED_WAIT_S",
    "N_PLUS_ONE_THRESHOLD",
}
CREDENTIAL_KEYS = ("CLIENT_SECRET", "CERTIFICATE", "CREDENTIAL")
#: Dataverse hosts of each cloud, and the Entra ID authorities that issue their tokens
CLOUDS = (
    ("public", re.compile(r"\.crm\d*\.dynamics\.com\Z"), {"login.microsoftonline.com"}),
    ("US government", re.compile(r"\.crm\.microsoftdynamics\.us\Z"), {"login.microsoftonline.us"}),
    ("US DoD", re.compile(r"\.crm\.appsplatform\.us\Z"), {"login.microsoftonline.us"}),
    (
        "China (21Vianet)",
        re.compile(r"\.crm\.dynamics\.cn\Z"),
        {"login.chinacloudapi.cn", "login.partner.microsoftonline.cn"},
    ),
)
AUTHORITIES = set().union(*(hosts for _, _, hosts in CLOUDS))
HINT = "See docs/usage.md, 'Connecting to Dataverse'."


def error(message: str, id: int, hint: str = HINT) -> checks.Error:
    return checks.Error(message, hint=hint, id=f"migrator.E{id:03d}")


def unknown_keys(where: str, given: Iterable[str], known: set[str], id: int) -> list:
    found = []
    for key in sorted(set(given) - known):
        nearest = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"Did you mean '{nearest[0]}'?" if nearest else f"Known: {', '.join(sorted(known))}."
        found.append(error(f"{where} has an unknown key '{key}': it is ignored.", id, hint))
    return found


@checks.register("cdms")
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    cdms = getattr(settings, "CDMS", None)
    if not isinstance(cdms, Mapping) or not cdms.get("BASE_URL"):
        return [error("settings.CDMS needs a BASE_URL: the Web API root of the environment.", 3)]
    auth = cdms.get("AUTH") or {}
    found = unknown_keys("settings.CDMS", cdms, KNOWN_KEYS, 2)
    found += unknown_keys("settings.CDMS['AUTH']", auth, AUTH_KEYS, 2)
    if isinstance(cdms.get("GOVERNOR"), Mapping):
        found += unknown_keys("settings.CDMS['GOVERNOR']", cdms["GOVERNOR"], GOVERNOR_KEYS, 2)
    found += _transport(cdms["BASE_URL"], token_url(auth))
    found += _credentials(cdms["BASE_URL"], auth)
    found += _extras(cdms)
    return found


def _transport(base_url: str, token: str | None) -> list:
    found = []
    for name, url in (("BASE_URL", base_url), ("the token URL", token)):
        if url is None:
            continue
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname)):
            found.append(
                error(
                    f"settings.CDMS {name} {url!r} is not HTTPS: tokens and records would "
                    "travel in clear (only this machine's simulator may use http).",
                    4,
                )
            )
    return found


def _credentials(base_url: str, auth: Mapping[str, Any]) -> list:
    if not auth:
        if is_loopback(urlsplit(base_url).hostname):
            return []  # a local simulator may run without tokens
        return [error("settings.CDMS has no AUTH: the remote answers 401 without a token.", 5)]
    given = [key for key in CREDENTIAL_KEYS if auth.get(key)]
    found = []
    if not given:
        found.append(
            error(
                "settings.CDMS['AUTH'] has no credential: give CLIENT_SECRET, CERTIFICATE or "
                "CREDENTIAL.",
                5,
            )
        )
    elif len(given) > 1:
        found.append(
            error(f"settings.CDMS['AUTH'] has {' and '.join(given)}: give one credential.", 6)
        )
    if given != ["CREDENTIAL"]:  # a credential object knows its own client and authority
        if not auth.get("CLIENT_ID"):
            found.append(error("settings.CDMS['AUTH'] needs CLIENT_ID.", 5))
        if token_url(auth) is None:
            found.append(error("settings.CDMS['AUTH'] needs TENANT_ID (or TOKEN_URL).", 5))
    if auth.get("CERTIFICATE") and not Path(auth["CERTIFICATE"]).is_file():
        found.append(error(f"The certificate file {auth['CERTIFICATE']!r} does not exist.", 8))
    if auth.get("CREDENTIAL") and not callable(getattr(auth["CREDENTIAL"], "get_token", None)):
        found.append(
            error(
                f"settings.CDMS['AUTH']['CREDENTIAL'] is a {type(auth['CREDENTIAL']).__name__}, "
                "which has no get_token(*scopes) method.",
                9,
            )
        )
    found += _authority(base_url, auth)
    return found


def _authority(base_url: str, auth: Mapping[str, Any]) -> list:
    """The token URL must be the authority of the base URL's cloud, and of the tenant named."""
    token = token_url(auth)
    if token is None:
        return []
    host, token_host = urlsplit(base_url).hostname or "", urlsplit(token).hostname or ""
    found = []
    for cloud, pattern, authorities in CLOUDS:
        if pattern.search(host) and token_host in AUTHORITIES and token_host not in authorities:
            found.append(
                error(
                    f"The token URL's host {token_host} issues no tokens for {host}, an "
                    f"environment of the {cloud} cloud (its authority: "
                    f"{' or '.join(sorted(authorities))}).",
                    7,
                )
            )
    tenant = auth.get("TENANT_ID")
    if tenant and auth.get("TOKEN_URL") and token_host in AUTHORITIES:
        named = urlsplit(token).path.strip("/").split("/")[0]
        if named.lower() != str(tenant).lower():
            found.append(
                error(f"The token URL is for the tenant '{named}' but TENANT_ID is '{tenant}'.", 7)
            )
    return found


def _extras(cdms: Mapping[str, Any]) -> list:
    needs = []
    if cdms.get("GOVERNOR") or "://" in (cdms.get("TOKEN_CACHE") or ""):
        needs.append(("GOVERNOR and a Redis TOKEN_CACHE", "redis", "redis"))
    if (cdms.get("AUTH") or {}).get("CERTIFICATE"):
        needs.append(("A CERTIFICATE", "jwt", "certificate"))
    return [
        error(
            f"{part} need(s) the '{extra}' extra, which is not installed.",
            10,
            hint=f"pip install 'django-cdms[{extra}]'",
        )
        for part, module, extra in needs
        if importlib.util.find_spec(module) is None
    ]


@checks.register("cdms", deploy=True)
def check_deployment(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """What is fine on a developer's machine and wrong in production."""
    cdms = getattr(settings, "CDMS", None)
    if settings.DEBUG or not isinstance(cdms, Mapping):
        return []
    found = []
    auth = cdms.get("AUTH") or {}
    if auth.get("CLIENT_ID") == DEMO_CLIENT_ID or auth.get("CLIENT_SECRET") == DEMO_CLIENT_SECRET:
        found.append(
            checks.Warning(
                "settings.CDMS['AUTH'] holds the simulator's public demo credentials, with "
                "DEBUG off.",
                hint="Use the app registration's own credentials from the environment.",
                id="migrator.W002",
            )
        )
    host = urlsplit(cdms.get("BASE_URL") or "").hostname
    if host and is_loopback(host):
        found.append(
            checks.Warning(
                f"settings.CDMS BASE_URL points at this machine ({host}): the local "
                "simulator, not a CRM, with DEBUG off.",
                hint="Set BASE_URL to the environment's Web API, e.g. "
                "https://<org>.crm.dynamics.com/api/data/v9.2/.",
                id="migrator.W003",
            )
        )
    return found
