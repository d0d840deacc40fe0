"""``manage.py cdms_inspect ENTITY_SET ...``: CDMSModel classes from the remote's $metadata."""

from django.core.management.base import BaseCommand, CommandError

from migrator.inspection import models_source
from migrator.management.resolve import remote_metadata


class Command(BaseCommand):
    help = (
        "Print a CDMSModel for each entity set named (fields, types, mapping, lookups), "
        "generated from the CRM's $metadata, as inspectdb does for a database."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("entity_sets", nargs="+", metavar="ENTITY_SET")

    def handle(self, *args, entity_sets: list[str], **options) -> None:
        metadata = remote_metadata()
        try:
            self.stdout.write(models_source(entity_sets, metadata), ending="")
        except KeyError as error:
            raise CommandError(str(error).strip("'\"")) from None
