"""The health check of the connection to the CRM, as a view: include ``migrator.urls``
(``path("health/cdms/", include("migrator.urls"))``). It answers ``migrator.ping``'s report as
JSON, 200 when every step passed and 503 otherwise. Each call costs the remote two requests and
one per mapped entity set: point a monitor at it once a minute, not a load balancer once a
second, and keep it off the public internet (it names the entity sets and the app user)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .ping import ping


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    report = ping()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)
