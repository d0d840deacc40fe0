"""``manage.py cdms_check``: synced models' mappings checked against the remote's $metadata."""

from django.core.management.base import BaseCommand, CommandError

from migrator.management.resolve import remote_metadata, synced_models_named
from migrator.remote_check import ERROR, check_models


class Command(BaseCommand):
    help = (
        "Read the CRM's $metadata and report every mapping that names a missing entity set or "
        "property, or a type that does not convert, and every key guessed rather than read; "
        "exit non-zero when any mapping is wrong."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("models", nargs="*", metavar="app_label.Model")

    def handle(self, *args, models: list[str], **options) -> None:
        synced = synced_models_named(models)
        problems = check_models(synced, remote_metadata())
        for problem in problems:
            self.stdout.write(str(problem))
        wrong = sum(problem.level == ERROR for problem in problems)
        checked = f"{len(synced)} synced models checked against $metadata"
        if wrong:
            raise CommandError(f"{checked}: {wrong} wrong")
        self.stdout.write(f"{checked}: no mapping is wrong")
