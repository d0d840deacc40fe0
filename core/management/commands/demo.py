"""``manage.py demo``: the main job end to end on embedded defaults -- the local database and
the CRM simulator, started in-process on a free loopback port. It prints what it did."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.test.utils import override_settings

from cdms_api.simulator import Simulator, SimulatorServer
from cdms_api.simulator.testing import SimulatorHandle
from core.demo.orm import OrmDemo
from core.demo.resync import ResyncDemo
from core.demo.wire import WireDemo


class Command(BaseCommand):
    help = "Run the demo against the local CRM simulator and print what it did."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        with SimulatorServer(Simulator(seed="demo")) as server:
            simulator = SimulatorHandle(server.root_url)
            cdms = {
                **settings.CDMS,
                "BASE_URL": simulator.base_url,
                "AUTH": {
                    "TOKEN_URL": simulator.token_url,
                    "CLIENT_ID": simulator.client_id,
                    "CLIENT_SECRET": simulator.client_secret,
                },
            }
            with override_settings(CDMS=cdms):
                self.stdout.write(f"CRM simulator serving {simulator.base_url} (demo data)\n")
                OrmDemo(simulator, self.stdout.write).run()
                ResyncDemo(simulator, self.stdout.write).run()
                simulator.reset()
                WireDemo(simulator, self.stdout.write).run()
        self.stdout.write(
            "\nThe admin on the demo data: `make admin` (the simulator, a superuser admin with "
            "password admin, runserver), then open http://127.0.0.1:8000/ and log in.\n"
        )
