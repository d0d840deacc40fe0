"""Microsoft's PowerPlatform-Dataverse-Client against the simulator, over HTTPS, with a token
from azure-identity (MSAL) at the simulator's v2.0 endpoint."""

from __future__ import annotations

from azure.identity import ClientSecretCredential
from PowerPlatform.Dataverse.client import DataverseClient
from steps import CLIENT_ID, CLIENT_SECRET, NAME, PREFIX, ROOT, check, quoted, step

credential = ClientSecretCredential(
    "simulator", CLIENT_ID, CLIENT_SECRET, authority=ROOT, disable_instance_discovery=True
)
with DataverseClient(ROOT, credential) as client:
    records = client.records
    key = step("create", lambda: records.create("account", {"name": NAME}))

    def read():
        record = records.retrieve("account", key)
        check(record is not None and record["name"] == NAME, f"read back {record!r}")

    step("read by id", read)

    def filtered():
        found = records.list("account", filter=f"name eq {quoted(NAME)}", select=["name"])
        check([r["accountid"] for r in found] == [key], f"filter found {len(found)}")

    step("filter by name", filtered)

    def update():
        records.update("account", key, {"telephone1": "+44 20 7946 0999"})
        check(records.retrieve("account", key)["telephone1"] == "+44 20 7946 0999", "update")

    step("update", update)
    bulk = step(
        "CreateMultiple",
        lambda: records.create("account", [{"name": f"{PREFIX} {i}"} for i in range(5)]),
    )
    check(len(bulk) == 5, f"CreateMultiple gave {bulk!r}")

    def batch():
        request = client.batch.new()
        request.records.create("account", {"name": f"{PREFIX} batch"})
        with request.changeset() as changeset:
            changeset.records.create("account", {"name": f"{PREFIX} changeset"})
            changeset.records.update("account", key, {"websiteurl": "https://batch.example"})
        result = request.execute()
        check(not result.has_errors, f"batch errors {result.failed}")
        check(records.retrieve("account", key)["websiteurl"] == "https://batch.example", "batch")

    step("$batch with a changeset", batch)

    def top():
        found = records.list(
            "account",
            filter=f"startswith(name,{quoted(PREFIX)})",
            orderby=["name desc"],
            top=2,
            select=["name"],
        )
        check([r["name"] for r in found] == [f"{PREFIX} changeset", f"{PREFIX} batch"], "top")

    step("$orderby with $top", top)

    def paging():
        pages = list(
            records.list_pages("account", filter=f"startswith(name,{quoted(PREFIX)})", page_size=3)
        )
        check([len(p) for p in pages] == [3, 3, 1], f"pages {[len(p) for p in pages]}")

    step("paging with odata.maxpagesize", paging)
    step("delete", lambda: records.delete("account", key))
    step("read deleted", lambda: check(records.retrieve("account", key) is None, "still there"))
