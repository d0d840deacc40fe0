"""``manage.py demo_superuser``: the demo's superuser, ``admin`` with password ``admin``, made
once (``make admin``). For a local demo only: never on a database anyone else reaches."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = PASSWORD = "admin"


class Command(BaseCommand):
    help = "Create the demo superuser admin/admin unless it exists."

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        if users.filter(username=USERNAME).exists():
            self.stdout.write(f"superuser {USERNAME} exists")
            return
        users.create_superuser(USERNAME, "admin@example.com", PASSWORD)
        self.stdout.write(f"superuser {USERNAME} created, password {PASSWORD}")
