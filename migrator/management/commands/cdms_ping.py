"""``manage.py cdms_ping [--json]``."""

import json

from django.core.management.base import BaseCommand, CommandError

from migrator.ping import ping


class Command(BaseCommand):
    help = (
        "Check the connection to the CRM: a token, WhoAmI, one record of each mapped entity "
        "set, each timed. Exits non-zero when a step fails."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="the report as JSON"
        )

    def handle(self, *args, as_json: bool = False, **options) -> None:
        report = ping()
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            for line in report.lines():
                self.stdout.write(line)
        if not report.ok:
            raise CommandError("the CRM is not reachable as configured (see above)")
