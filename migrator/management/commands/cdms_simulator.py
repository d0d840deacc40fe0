"""``manage.py cdms_simulator [options]``: the same server and options as
``python -m cdms_api.simulator``."""

import sys

from django.core.management.base import BaseCommand

from cdms_api.simulator.__main__ import main


class Command(BaseCommand):
    help = "Serve the Dataverse-like CRM simulator on this machine (loopback by default)."

    def run_from_argv(self, argv: list[str]) -> None:
        sys.exit(main(argv[2:]))

    def handle(self, *args: str, **options) -> None:
        if return_code := main(list(args)):
            raise SystemExit(return_code)
