"""``manage.py soak``: the fault soak on a database of its own (created and dropped as the
tests' are: ``soak_<name>``, or ``soak-db.sqlite3``), against a simulator in a process of its
own; prints the table, writes the JSON and exits non-zero when a check fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from cdms_api.simulator.testing import simulator_process
from core.soak.run import run


class Command(BaseCommand):
    help = (
        "Mixed ORM work from threads in several processes against the CRM simulator, faults "
        "injected on a share of requests, an incremental resync alongside; then the checks."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--operations", type=int, default=2000)
        parser.add_argument("--processes", type=int, default=2)
        parser.add_argument("--threads", type=int, default=4, help="per process")
        parser.add_argument("--faults", type=float, default=0.2, help="share of requests")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--json", default="soak.json", help="where the figures go")

    def handle(self, *args: Any, **options: Any) -> None:
        name = connection.settings_dict["NAME"]
        # a database of its own, apart from the tests' (which may run meanwhile)
        sqlite = connection.vendor == "sqlite"
        own = str(settings.BASE_DIR / "soak-db.sqlite3") if sqlite else f"soak_{name}"
        connection.settings_dict["TEST"] = {**connection.settings_dict["TEST"], "NAME": own}
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            with simulator_process("none") as simulator:
                result = run(
                    simulator,
                    operations=options["operations"],
                    processes=options["processes"],
                    threads=options["threads"],
                    share=options["faults"],
                    seed=options["seed"],
                )
        finally:
            connection.creation.destroy_test_db(name, verbosity=0)
        self.stdout.write(result.table())
        Path(options["json"]).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
        self.stdout.write(f"figures written to {options['json']}")
        if result.problems():
            raise CommandError("; ".join(result.problems()))
