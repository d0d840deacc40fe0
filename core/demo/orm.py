"""The demo's first part: the example models synced both ways through the Django ORM."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote_plus

from cdms_api.errors import CDMSError
from cdms_api.simulator.testing import SimulatorHandle
from core.models import Contact, Organisation
from migrator import remote
from migrator.testing import RemoteCallCounter


def without_select(request: str) -> str:
    """The remote request without its long ``$select``, for reading."""
    return unquote_plus(re.sub(r"\$select=[^&]*&?", "", request))


class OrmDemo:
    def __init__(self, simulator: SimulatorHandle, write: Callable[[str], None]):
        self.simulator, self.write = simulator, write
        self.step = 0

    def title(self, text: str) -> None:
        self.step += 1
        self.write(f"\n{self.step}. {text}")

    def run(self) -> None:
        client = remote.client()
        self.write("== Django models synced through to the CRM")
        Contact.objects.skip_cdms().all().delete()
        Organisation.objects.skip_cdms().all().delete()
        self.write("   (the example app's local rows cleared: the demo starts from an empty cache)")

        self.title("A filter, translated to OData and refreshed from the CRM")
        acme = Organisation.objects.filter(name__icontains="acme", employees__gte=50)
        self.write("   Organisation.objects.filter(name__icontains='acme', employees__gte=50)")
        self.write(f"   remote: {without_select(acme.cdms_query)}")
        with RemoteCallCounter() as calls:
            names = [f"{o.name} ({o.employees})" for o in acme.order_by("-employees")]
        self.write(f"   -> {', '.join(names)}  [{len(calls)} remote call]")

        self.title("A record created in the CRM behind Django's back shows up in a filter")
        client.create("accounts", {"name": "Globex Corporation", "numberofemployees": 900})
        found = Organisation.objects.filter(name__startswith="Globex")
        self.write("   created remotely: accounts {'name': 'Globex Corporation'}")
        self.write(f"   Organisation.objects.filter(name__startswith='Globex') -> {list(found)}")

        self.title("A change made in the CRM refreshes the local row on get()")
        holdings = Organisation.objects.get(name="Acme Holdings")
        client.update("accounts", holdings.cdms_pk, {"numberofemployees": 1500})
        fresh = Organisation.objects.get(pk=holdings.pk)
        self.write(
            f"   employees remotely set 1200 -> 1500; get(pk={holdings.pk}).employees = "
            f"{fresh.employees}"
        )

        self.title("Writes go to the CRM first: a create, then an update with the ETag")
        with RemoteCallCounter() as calls:
            initech = Organisation.objects.create(name="Initech", employees=50, uk_based=False)
            initech.employees = 55
            initech.save()
        record = client.get("accounts", initech.cdms_pk, select=["name", "numberofemployees"])
        self.write(
            f"   create + save: {len(calls)} remote calls; the CRM now has "
            f"{record['name']!r} with {record['numberofemployees']} employees "
            f"(etag {record['@odata.etag']})"
        )

        self.title("A write the CRM refuses is rolled back locally")
        self.simulator.add_faults(
            {"method": "POST", "path": "/accounts$", "status": 500, "times": None}
        )
        try:
            Organisation.objects.create(name="Hooli")
        except CDMSError as error:
            self.write(
                f"   Organisation.objects.create(name='Hooli') raised "
                f"{type(error).__name__}: {error.message}"
            )
        self.simulator.clear_faults()
        local = Organisation.objects.skip_cdms().filter(name="Hooli").count()
        self.write(f"   local rows named Hooli afterwards: {local}")

        self.title("A stale save is a conflict, not a silent overwrite")
        stale = Organisation.objects.get(name="Initech")
        client.update("accounts", stale.cdms_pk, {"numberofemployees": 60})
        stale.employees = 70
        try:
            stale.save()
        except CDMSError as error:
            self.write(
                f"   save() of a copy loaded before a remote change raised "
                f"{type(error).__name__} ({error.code})"
            )
        kept = Organisation.objects.get(pk=stale.pk).employees
        self.write(f"   the CRM's value is kept: employees = {kept}")

        self.title("What the CRM cannot filter is relaxed soundly; the local query decides")
        spring = Organisation.objects.filter(uk_based=True, founded_on__month__in=[2, 3, 4])
        self.write("   filter(uk_based=True, founded_on__month__in=[2, 3, 4])")
        self.write(f"   remote: {without_select(spring.cdms_query)}")
        self.write(f"   -> {[o.name for o in spring.order_by('name')]}")

        self.title("skip_cdms(): purely local, no remote call")
        with RemoteCallCounter() as calls:
            count = Organisation.objects.skip_cdms().filter(uk_based=True).count()
        self.write(
            f"   Organisation.objects.skip_cdms().filter(uk_based=True).count() = {count} "
            f"[{len(calls)} remote calls]"
        )
