"""URLs of the optional health check and metrics: ``path("health/cdms/",
include("migrator.urls"))`` serves ``health/cdms/`` and ``health/cdms/metrics/``."""

from django.urls import path

from . import views

app_name = "migrator"
urlpatterns = [
    path("", views.health, name="health"),
    path("metrics/", views.metrics, name="metrics"),
]
