"""Views for operators: include ``migrator.urls`` (``path("health/cdms/",
include("migrator.urls"))``).

``health``: the health check of the connection to the CRM. It answers ``migrator.ping``'s
report as JSON, 200 when every step passed and 503 otherwise. Each call costs the remote two
requests and one per mapped entity set: point a monitor at it once a minute, not a load
balancer once a second, and keep it off the public internet (it names the entity sets and the
app user). ``metrics``: Prometheus's scrape (``migrator.metrics``), no remote request."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .metrics import exposition
from .ping import ping


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    report = ping()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's scrape (``migrator.metrics``); 404 without ``prometheus_client``. Keep it
    off the public internet as the health check."""
    answer = exposition()
    if answer is None:
        return HttpResponse("prometheus_client is not installed", status=404)
    body, content_type = answer
    return HttpResponse(body, content_type=content_type)
