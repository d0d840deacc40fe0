from django.apps import AppConfig


class MigratorConfig(AppConfig):
    name = "migrator"
    verbose_name = "CDMS sync-through layer"

    def ready(self) -> None:
        from . import checks, settings_checks  # noqa: F401  (register the system checks)
        from .metrics import count_deleted
        from .signals import records_synced

        records_synced.connect(count_deleted, dispatch_uid="migrator.metrics")
