"""The remote CRM as another user changes it behind the ORM's back, for the migrator's tests:
plain Web API calls through a client of the test's own, which ``assertNumRemoteCalls`` does
not count."""

from __future__ import annotations

from typing import Any

from cdms_api import odata
from cdms_api.client import CDMSClient
from cdms_api.errors import NotFound
from cdms_api.keys import bind
from cdms_api.simulator.seed import demo_key
from core.models import Contact, Organisation


class CRM:
    """The remote as another user changes it: plain Web API calls through a client of the
    test's own. Records are named as the ORM shows them (an account by its name, a contact by
    ``"First Last"``); ``touched`` remembers every record changed, to check afterwards that
    the local table caught up."""

    def __init__(self, client: CDMSClient):
        self.client = client
        self.keys: dict[str, str] = {}
        self.touched: list[tuple[type, str]] = []

    def key(self, name: str) -> str:
        return self.keys.get(name) or demo_key(name)

    def add(self, name: str, track: bool = True, **data: Any) -> dict:
        """An account named ``name``; ``parent=`` names its parent account. ``track=False``
        for a record the read is not expected to bring in."""
        if "parent" in data:
            data["parentaccountid@odata.bind"] = bind("accounts", self.key(data.pop("parent")))
        record = self.client.create("accounts", {"name": name, **data})
        self.keys[name] = record["accountid"]
        if track:
            self.touched.append((Organisation, record["accountid"]))
        return record

    def add_contact(self, first: str, last: str, organisation: str | None = None) -> dict:
        data = {"firstname": first, "lastname": last}
        if organisation:
            data["parentcustomerid_account@odata.bind"] = bind("accounts", self.key(organisation))
        record = self.client.create("contacts", data)
        self.keys[f"{first} {last}"] = record["contactid"]
        self.touched.append((Contact, record["contactid"]))
        return record

    def change(self, name: str, model: type = Organisation, /, **data: Any) -> dict:
        for lookup, entity_set in (("parent", "accounts"), ("organisation", "accounts")):
            if lookup in data:
                navigation = "parentaccountid" if lookup == "parent" else "parentcustomerid_account"
                data[f"{navigation}@odata.bind"] = bind(entity_set, self.key(data.pop(lookup)))
        self.touched.append((model, self.key(name)))
        return self.client.update(model.cdms.entity_set, self.key(name), data)

    def drop(self, name: str, model: type = Organisation) -> None:
        self.touched.append((model, self.key(name)))
        self.client.delete(model.cdms.entity_set, self.key(name))

    def record(self, model: type, key: str) -> dict | None:
        try:
            return self.client.get(model.cdms.entity_set, key, select=model.cdms.select)
        except NotFound:
            return None

    def find(self, entity_set: str, prop: str, value: str) -> list[dict]:
        """The records whose ``prop`` equals ``value`` (as Dataverse compares text)."""
        return list(self.client.iter(entity_set, filter=odata.Prop(prop).eq(value)))

    def all(self, entity_set: str = "accounts") -> list[dict]:
        return list(self.client.iter(entity_set))

    def assert_in_sync(self, model: type, key: str) -> None:
        """The local row of ``key`` is what the remote holds: same values, same ETag; no row
        when the record is gone."""
        record = self.record(model, key)
        row = model.objects.skip_cdms().filter(cdms_pk=key).first()
        if record is None:
            assert row is None, f"{row} was deleted remotely but is still in the local table"
            return
        assert row is not None, f"{record} is missing from the local table"
        assert row.cdms_etag == record["@odata.etag"], f"{row} is stale"
        for fm in model.cdms.fields:
            local = getattr(row, fm.field.attname)
            if fm.is_lookup:
                local = local and str(fm.target.objects.skip_cdms().get(pk=local).cdms_pk)
                assert local == fm.lookup_key(record), f"{row}.{fm.field.name}"
            else:
                assert local == fm.to_python(record.get(fm.remote)), f"{row}.{fm.field.name}"

    def assert_all_in_sync(self, model: type, keys) -> None:
        """Every key's local row is what the remote holds (no row when there is no record)."""
        for key in keys:
            self.assert_in_sync(model, str(key))

    def all_keys(self, model: type) -> set[str]:
        """The keys of every record of the model's entity set."""
        key = model.cdms.key
        return {r[key] for r in self.client.iter(model.cdms.entity_set, select=[key])}

    def assert_touched_in_sync(self) -> None:
        for model, key in self.touched:
            self.assert_in_sync(model, key)


def names(rows) -> set[str]:
    return {str(row) for row in rows}
