"""URLs of the optional health check: ``path("health/cdms/", include("migrator.urls"))``."""

from django.urls import path

from . import views

app_name = "migrator"
urlpatterns = [path("", views.health, name="health")]
