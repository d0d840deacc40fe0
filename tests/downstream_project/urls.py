from django.urls import include, path

urlpatterns = [path("health/cdms/", include("migrator.urls"))]
