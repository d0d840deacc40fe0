"""``manage.py cdms_resync [app_label.Model ...] [--full] [--async]``."""

from django.core.management.base import BaseCommand, CommandError

from migrator.management.resolve import synced_models_named
from migrator.progress import resync_with_progress
from migrator.tasks import resync_model


class Command(BaseCommand):
    help = (
        "Bring synced models' local tables in step with the CRM: incrementally (the changes "
        "since the last resync), or in full with --full; in this process with a progress bar, "
        "or queued on the Celery workers with --async. Every synced model when none is named."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("models", nargs="*", metavar="app_label.Model")
        parser.add_argument("--full", action="store_true", help="read every record again")
        parser.add_argument(
            "--async",
            action="store_true",
            dest="queue",
            help="queue the resyncs on the Celery workers and return",
        )

    def handle(self, *args, models: list[str], full: bool, queue: bool, **options) -> None:
        synced = synced_models_named(models)
        if queue:
            for model in synced:
                try:
                    task = resync_model.delay(model._meta.label, full=full)
                except Exception as error:  # the broker is unreachable
                    raise CommandError(f"cannot queue the resync: {error}") from error
                self.stdout.write(f"{model._meta.label}: queued (task {task.id})")
            self.stdout.write("manage.py cdms_status shows how they are doing.")
            return
        self.stderr.ending = ""  # the bar redraws its line itself
        bars = None if options["verbosity"] == 0 else self.stderr
        if not resync_with_progress(synced, full=full, out=self.stdout, bars=bars):
            raise CommandError("some resyncs failed; run again to go on from where they stopped")
