"""``manage.py cdms_resync [app_label.Model ...] [--full [--partitions N]] [--async]``."""

from django.core.management.base import BaseCommand, CommandError

from cdms_api.extras import MissingExtra
from migrator import partitions as partitions_module
from migrator.management.resolve import synced_models_named
from migrator.progress import resync_with_progress
from migrator.remote import setting

try:
    from migrator import tasks
except MissingExtra as error:  # only --async needs Celery
    tasks, celery_missing = None, str(error)


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
            "--partitions",
            type=int,
            default=None,
            metavar="N",
            help="with --full: read each model in N ranges of createdon, each a task of its own "
            "with --async (default: CDMS['RESYNC_PARTITIONS'], 1)",
        )
        parser.add_argument(
            "--async",
            action="store_true",
            dest="queue",
            help="queue the resyncs on the Celery workers and return",
        )

    def handle(
        self, *args, models: list[str], full: bool, queue: bool, partitions: int | None, **options
    ) -> None:
        synced = synced_models_named(models)
        ranges = partitions or int(setting("RESYNC_PARTITIONS", 1))
        if ranges < 1 or (partitions and not full):
            raise CommandError("--partitions takes a number of at least 1, with --full")
        split = full and ranges > 1
        if queue:
            if tasks is None:
                raise CommandError(celery_missing)
            for model in synced:
                label = model._meta.label
                try:
                    if split:
                        task = tasks.resync_partitioned.delay(label, ranges)
                    else:
                        task = tasks.resync_model.delay(label, full=full)
                except Exception as error:  # the broker is unreachable
                    raise CommandError(f"cannot queue the resync: {error}") from error
                self.stdout.write(f"{label}: queued (task {task.id})")
            self.stdout.write("manage.py cdms_status shows how they are doing.")
            return
        if split:
            for model in synced:
                self.stdout.write(str(partitions_module.resync_partitioned(model, ranges)))
            return
        self.stderr.ending = ""  # the bar redraws its line itself
        bars = None if options["verbosity"] == 0 else self.stderr
        if not resync_with_progress(synced, full=full, out=self.stdout, bars=bars):
            raise CommandError("some resyncs failed; run again to go on from where they stopped")
