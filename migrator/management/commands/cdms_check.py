"""``manage.py cdms_check``: synced models' mappings checked against the remote's $metadata."""

from django.core.management.base import BaseCommand, CommandError

from cdms_api.errors import CDMSError
from migrator import remote
from migrator.remote_check import ERROR, check_models
from migrator.resync import models_named


class Command(BaseCommand):
    help = (
        "Read the CRM's $metadata and report every mapping that names a missing entity set or "
        "property, or a type that does not convert, and every key guessed rather than read; "
        "exit non-zero when any mapping is wrong."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("models", nargs="*", metavar="app_label.Model")

    def handle(self, *args, models: list[str], **options) -> None:
        try:
            models = models_named(models)
        except LookupError as error:
            raise CommandError(str(error).strip("'\"")) from None
        try:
            metadata = remote.client().metadata()
        except CDMSError as error:
            raise CommandError(f"cannot read $metadata: {error}") from error
        problems = check_models(models, metadata)
        for problem in problems:
            self.stdout.write(str(problem))
        wrong = sum(problem.level == ERROR for problem in problems)
        checked = f"{len(models)} synced models checked against $metadata"
        if wrong:
            raise CommandError(f"{checked}: {wrong} wrong")
        self.stdout.write(f"{checked}: no mapping is wrong")
