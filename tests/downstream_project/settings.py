"""Settings of a project that installed django-cdms[simulator] and nothing of this repository."""

SECRET_KEY = "throwaway"
DEBUG = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "migrator", "shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "shop.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
ROOT_URLCONF = "urls"
# the pytest plugin's cdms_simulator_settings points this at the simulator for each test
CDMS = {"BASE_URL": "http://127.0.0.1:9/api/data/v9.2/"}
