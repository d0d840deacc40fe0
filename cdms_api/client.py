"""``CDMSClient``: records of the remote CRM read and written through the Web API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

import simplejson

from . import config, odata
from .auth import ClientSecret, Credential, TokenCache, TokenManager, default_scope
from .batch import Batch, Operation
from .errors import CDMSError, MalformedResponse, NotFound, RecordWithoutKey, UnknownTable
from .governor import Governor
from .keys import LOOKUP_NAMES, RETURN_RECORD, entity_path, new_key
from .metadata import (
    TABLE_SELECT,
    EntitySetInfo,
    Table,
    parse_attributes,
    parse_csdl,
    parse_table,
)
from .retry import RetryPolicy
from .session import CDMSSession

#: Dataverse accepts URLs up to 32 KB; stay under it with room for the host part.
MAX_URL_LENGTH = 32_000
#: Records per ``CreateMultiple``/``UpdateMultiple`` request (Dataverse's recommended most).
MAX_BULK = 1000
#: the most records ``@odata.count`` counts; past it, an annotation says the limit was exceeded
COUNT_LIMIT = 5000
COUNT_LIMIT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
BULK_ACTION = "Microsoft.Dynamics.CRM."
#: the bulk messages a table may or may not support (Dataverse's standard tables vary)
BULK_MESSAGES = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")
Filter = str | odata.Node | None
T = TypeVar("T")


class CDMSClient:
    """One client per remote: it owns a pooled session and, with it, auth and retries.

    Records are plain dicts as the Web API returns them (``@odata.etag``, ``modifiedon``,
    lookups as ``_x_value``). Writes take dicts too; lookups are written as
    ``{"parentaccountid@odata.bind": "/accounts(<key>)"}`` (see ``bind``)."""

    def __init__(
        self,
        base_url: str,
        *,
        token_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
        credential: Any = None,
        token_cache: TokenCache | None = None,
        governor: Governor | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        retry: RetryPolicy | None = None,
        page_size: int = 5000,
        keys: Mapping[str, str] | None = None,
    ):
        """Tokens come from ``credential`` -- a token source (``ClientSecret``,
        ``ClientCertificate``) or any object with azure-core's ``get_token(*scopes)`` -- or
        else from ``client_id`` and ``client_secret`` at ``token_url``; ``scope`` defaults to
        the base URL's origin + ``/.default``. ``token_cache`` shares tokens between processes,
        ``governor`` the remote's request budget (``cdms_api.governor``)."""
        scope = scope or default_scope(base_url)
        if credential is not None and not (
            hasattr(credential, "fetch") and hasattr(credential, "cache_key")
        ):
            credential = Credential(credential, scope)
        elif credential is None and token_url:
            if not client_id or not client_secret:
                raise ValueError("a token URL needs a client id and a client secret")
            credential = ClientSecret(token_url, client_id, client_secret, scope)
        tokens = None if credential is None else TokenManager(credential, token_cache)
        self.session = CDMSSession(
            base_url, tokens, timeout=timeout, retry=retry, governor=governor
        )
        self.page_size = page_size
        self._keys = dict(keys or {})
        self._definitions: dict[str, Table] = {}
        self._tables: dict[str, Table] = {}
        self._messages: dict[str, frozenset[str]] = {}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **overrides: Any) -> CDMSClient:
        """Build from a ``CDMS`` settings dict: ``BASE_URL``, ``AUTH`` (``cdms_api.config``
        says which ways to get a token it takes), optional ``TIMEOUT`` (connect, read),
        ``RETRY`` (RetryPolicy fields), ``PAGE_SIZE``, ``KEYS`` (entity set -> key name),
        ``TOKEN_CACHE`` and ``GOVERNOR`` (shared by processes, in Redis)."""
        options = {**config.client_options(settings), **overrides}
        return cls(settings["BASE_URL"], **options)

    def __repr__(self) -> str:
        return f"CDMSClient({self.session.base_url!r})"

    def close(self) -> None:
        self.session.close()

    # reads -------------------------------------------------------------------------------
    def get(
        self,
        entity_set: str,
        key: str | uuid.UUID,
        select: Iterable[str] | None = None,
        expand: Iterable[str] | None = None,
        etag: str | None = None,
    ) -> dict[str, Any] | None:
        """The record; with ``etag`` (``If-None-Match``), None when it still has that ETag
        (304 Not Modified: no body)."""
        params = _query_options(select=select, expand=expand)
        headers = {"Prefer": LOOKUP_NAMES}
        if etag:
            headers["If-None-Match"] = etag
        response = self.session.request(
            "GET", entity_path(entity_set, key), params=params, idempotent=True, headers=headers
        )
        if response.status_code == 304:
            return None
        return self.session.json(response)

    def iter(
        self,
        entity_set: str,
        filter: Filter = None,
        select: Iterable[str] | None = None,
        orderby: Iterable[str] | None = None,
        top: int | None = None,
        expand: Iterable[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching record, page by page (one request per page), in constant memory.

        A filter too long for one URL is split on its longest ``In`` list; the parts are read
        one after the other and records seen in an earlier part are skipped, so ordering holds
        within each part only."""
        filters = self._split(entity_set, filter, select=select, orderby=orderby, expand=expand)
        if len(filters) == 1:
            yield from self._pages(entity_set, filters[0], select, orderby, top, expand, page_size)
            return
        if top is not None and orderby:
            raise odata.FilterTooLong(
                "A filter split over several requests cannot keep $orderby with $top: each part "
                "would have its own first records. Shorten the In list, or drop top or orderby."
            )
        key, seen = self.key_of(entity_set), set()
        select = None if select is None else sorted({*select, key})
        for part in filters:
            for record in self._pages(entity_set, part, select, orderby, top, expand, page_size):
                if record[key] in seen:
                    continue
                seen.add(record[key])
                yield record
                if top is not None and len(seen) >= top:
                    return

    def _pages(self, entity_set, filter, select, orderby, top, expand, page_size):
        params = _query_options(filter=filter, select=select, orderby=orderby, expand=expand)
        page_size = page_size or self.page_size
        paged = top is None or top > page_size
        if not paged:
            params["$top"] = str(top)  # one answer: Dataverse ignores $top when paging
        headers = {"Prefer": _prefer(page_size if paged else None)}
        url: str | None = entity_set
        while url:
            if paged and top is not None:  # the last page asks for no more than is left
                headers = {"Prefer": _prefer(min(page_size, top))}
            page = self._page(url, params, headers)
            if top is not None and len(page.records) >= top:
                yield from page.records[:top]
                return
            yield from page.records
            if top is not None:
                top -= len(page.records)
            url, params = page.next_link, None

    def _page(
        self,
        url: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        tracked: bool = False,
    ) -> Page:
        """One page of a collection read; with ``tracked``, its ``$deletedEntity`` entries are
        told apart from the records."""
        response = self.session.request("GET", url, params=params, headers=headers, idempotent=True)
        body = self.session.json(response)
        entries = _value_list(body, response)
        page = Page(next_link=body.get("@odata.nextLink"), delta_link=body.get("@odata.deltaLink"))
        if not tracked:
            page.records = entries
            return page
        for entry in entries:
            if _is_deleted_entry(entry):
                page.deleted.append(entry["id"])
            else:
                page.records.append(entry)
        if not (page.next_link or page.delta_link):
            raise MalformedResponse(
                "a change-tracking answer without @odata.nextLink or @odata.deltaLink",
                status=response.status_code,
                method="GET",
                url=response.url,
            )
        return page

    def _follow(
        self, url: str, params: dict[str, str] | None, headers: dict[str, str], tracked: bool
    ) -> Iterator[Page]:
        """Pages from ``url`` on, following ``@odata.nextLink`` until there is none."""
        next_url: str | None = url
        while next_url:
            page = self._page(next_url, params, headers, tracked)
            yield page
            next_url, params = page.next_link, None

    def change_pages(
        self, entity_set: str, select: Iterable[str] | None = None, link: str | None = None
    ) -> Iterator[Page]:
        """A change-tracking read, one page (one request) at a time, in constant memory.

        Without ``link``: every record, the last page carrying the delta link to the changes
        from now on. With a delta link: the records created or changed since and the keys of
        those deleted (``Page.deleted``), then the next delta link. With a page's
        ``next_link``: the same read, on from that page (a read resumed where it stopped).
        ``select`` with a delta link replaces the link's own: the changes come with the
        properties asked for now, whichever read the link came from (one of keys alone, or
        before a property was mapped). ``ChangeTrackingNotEnabled`` when the table does not
        track changes, ``ChangesExpired`` when the link is too old."""
        headers = {"Prefer": "odata.track-changes," + _prefer(self.page_size)}
        params = None if link else _query_options(select=select)
        if link and select and _is_delta_link(link):
            link = _with_select(link, select)
        return self._follow(link or entity_set, params, headers, tracked=True)

    def pages(
        self,
        entity_set: str,
        filter: Filter = None,
        select: Iterable[str] | None = None,
        link: str | None = None,
    ) -> Iterator[Page]:
        """The matching records, page by page (one request each), in constant memory; a
        filter must fit in one URL. ``link``: a page's ``next_link``, to resume."""
        params = None if link else _query_options(filter=filter, select=select)
        return self._follow(link or entity_set, params, {"Prefer": _prefer(self.page_size)}, False)

    def key_pages(
        self, entity_set: str, filter: Filter = None, link: str | None = None
    ) -> Iterator[Page]:
        """The keys of every matching record (``$select`` of the key alone: the cheapest full
        read, to find deleted records), page by page; each record holds the key and its
        ``@odata.etag``. ``link``: a page's ``next_link``, to resume."""
        return self.pages(entity_set, filter, [self.key_of(entity_set)], link)

    def modified_pages(
        self,
        entity_set: str,
        since: datetime | None = None,
        select: Iterable[str] | None = None,
        link: str | None = None,
    ) -> Iterator[Page]:
        """The records modified at or after ``since`` (every record without it), oldest first
        (``$orderby=modifiedon,<key>``), page by page: how a table without change tracking is
        kept in step, by a ``modifiedon`` watermark. ``link``: a page's ``next_link``."""
        params = None
        if not link:
            params = _query_options(
                filter=None if since is None else odata.Prop("modifiedon").ge(since),
                select=None if select is None else list(dict.fromkeys([*select, "modifiedon"])),
                orderby=["modifiedon", self.key_of(entity_set)],
            )
        return self._follow(link or entity_set, params, {"Prefer": _prefer(self.page_size)}, False)

    def total_record_counts(self, *entity_names: str) -> dict[str, int]:
        """How many records each table holds (Dataverse's ``RetrieveTotalRecordCount``: a
        snapshot taken within the last 24 hours, not capped at 5,000), by logical name
        (``account``, not ``accounts``)."""
        names = simplejson.dumps(list(entity_names))
        response = self.session.request(
            "GET",
            "RetrieveTotalRecordCount(EntityNames=@p1)",
            params={"@p1": names},
            idempotent=True,
        )
        body = self.session.json(response).get("EntityRecordCountCollection")
        try:
            return dict(zip(body["Keys"], body["Values"], strict=True))
        except (TypeError, KeyError, ValueError):
            raise MalformedResponse(
                "a RetrieveTotalRecordCount answer without its Keys and Values",
                status=response.status_code,
                method="GET",
                url=response.url,
            ) from None

    def count(self, entity_set: str, filter: Filter = None) -> int:
        """How many records match, up to 5,000: Dataverse counts no further (``exact_count``
        tells a figure it stopped at)."""
        return self._count(entity_set, filter)[0]

    def exact_count(self, entity_set: str, filter: Filter = None) -> int | None:
        """How many records match; None when more do than Dataverse counts (5,000). One
        request, whatever the number: ``$count=true`` with a page of one record, of its key
        alone, and the annotation that says whether the count stopped at the limit.
        ``FilterTooLong``, before anything is sent, when the filter does not fit in one URL."""
        count, exceeded = self._count(entity_set, filter)
        return None if exceeded else count

    def _count(self, entity_set: str, filter: Filter) -> tuple[int, bool]:
        """``@odata.count`` and whether more records match. Dataverse advises against
        ``$top`` with ``$count``: a page size of one bounds the answer instead."""
        key = self.key_of(entity_set)
        if len(self._split(entity_set, filter, select=[key])) > 1:
            raise odata.FilterTooLong(
                "A count is one request: its filter must fit in one URL. Shorten the In list."
            )
        params = {**_query_options(filter=filter, select=[key]), "$count": "true"}
        headers = {
            "Prefer": f'odata.maxpagesize=1,odata.include-annotations="{COUNT_LIMIT_EXCEEDED}"'
        }
        response = self.session.request(
            "GET", entity_set, params=params, headers=headers, idempotent=True
        )
        body = self.session.json(response)
        count = body.get("@odata.count")
        exceeded = body.get(
            f"@{COUNT_LIMIT_EXCEEDED}", isinstance(count, int) and count >= COUNT_LIMIT
        )
        if type(count) is not int or type(exceeded) is not bool:
            raise MalformedResponse(
                "a $count answer without @odata.count (or with a limit annotation not true "
                "or false)",
                status=response.status_code,
                method="GET",
                url=response.url,
            )
        return count, exceeded

    def records(
        self, entity_set: str, keys: Iterable[str | uuid.UUID], select: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """The records of these keys that exist, in one request where the remote allows: a
        plain read when its URL fits the 32 KB limit, else reads of up to 1,000 keys each in
        one ``$batch``, whose inner URLs may be 64 KB long (the records a bulk write just
        stored, read back)."""
        wanted = sorted({str(key) for key in keys})
        if not wanted:
            return []
        key = self.key_of(entity_set)
        select = None if select is None else list(dict.fromkeys([*select, key]))
        condition = odata.Prop(key).isin(wanted)
        if len(self._split(entity_set, condition, select=select)) == 1:
            return list(self.iter(entity_set, filter=condition, select=select))
        with self.batch() as batch:
            reads = [
                batch.query(
                    entity_set,
                    _query_options(
                        filter=odata.Prop(key).isin(wanted[start : start + MAX_BULK]),
                        select=select,
                    ),
                    page_size=MAX_BULK,
                )
                for start in range(0, len(wanted), MAX_BULK)
            ]
        return [record for read in reads for record in self._batch_values(read)]

    def tops(self, entity_set: str, reads: Iterable[Top]) -> list[list[dict[str, Any]]]:
        """The first records of several reads of an entity set, each answered in one page,
        in one ``$batch`` request: each read's records, in its order. ``FilterTooLong``
        (before anything is sent) when a read's URL is too long for a batch."""
        with self.batch() as batch:
            operations = [
                batch.query(
                    entity_set,
                    {
                        **_query_options(read.filter, read.select, read.orderby, read.expand),
                        "$top": str(read.top),
                    },
                    page_size=None,
                )
                for read in reads
            ]
        return [self._batch_values(operation) for operation in operations]

    def _batch_values(self, read: Operation) -> list[dict[str, Any]]:
        """The records a read inside a ``$batch`` answered; its error if it failed."""
        if read.error is not None:
            raise read.error
        values = (read.record or {}).get("value")
        if not isinstance(values, list):
            raise MalformedResponse(
                "a read inside a $batch answered without a 'value' list",
                status=read.status,
                method="GET",
                url=self.session.url("$batch"),
            )
        return values

    # writes -------------------------------------------------------------------------------
    def create(
        self, entity_set: str, data: Mapping[str, Any], key: str | uuid.UUID | None = None
    ) -> dict[str, Any]:
        """Create a record and return it as stored (etag, ``modifiedon``, key).

        The key is generated here when not given, so the outcome of a create whose answer was
        lost can be found out by reading that key back: the record is created exactly once."""
        key = str(key or new_key())
        body = {**data, self.key_of(entity_set): key}

        def send() -> dict[str, Any]:
            response = self.session.request(
                "POST",
                entity_set,
                json=body,
                idempotent=False,
                headers={"Prefer": RETURN_RECORD},
            )
            return self.session.json(response)

        def created() -> dict[str, Any] | None:
            try:
                return self.get(entity_set, key)
            except NotFound:
                return None

        return _exactly_once(send, created)

    def update(
        self,
        entity_set: str,
        key: str | uuid.UUID,
        data: Mapping[str, Any],
        etag: str | None = None,
    ) -> dict[str, Any]:
        """Change an existing record (never creates one). With ``etag``, only if the record
        has not changed since (``PreconditionFailed`` otherwise). Returns the record."""
        headers = {"If-Match": etag or "*", "Prefer": RETURN_RECORD}
        response = self.session.request(
            "PATCH", entity_path(entity_set, key), json=dict(data), headers=headers, idempotent=True
        )
        return self.session.json(response)

    def upsert(
        self,
        entity_set: str,
        key: str | uuid.UUID,
        data: Mapping[str, Any],
        create_only: bool = False,
    ) -> dict[str, Any]:
        """Create the record with this key, or update it if it exists (``create_only``:
        ``DuplicateKey`` instead of an update)."""
        headers = {"Prefer": RETURN_RECORD}
        if create_only:
            headers["If-None-Match"] = "*"
        response = self.session.request(
            "PATCH", entity_path(entity_set, key), json=dict(data), headers=headers, idempotent=True
        )
        return self.session.json(response)

    def delete(self, entity_set: str, key: str | uuid.UUID, etag: str | None = None) -> None:
        """Delete a record; with ``etag``, only if it has not changed since. A delete whose
        answer was lost and that turns out to have happened is not an error."""
        path = entity_path(entity_set, key)

        def send() -> bool:
            self.session.request(
                "DELETE", path, idempotent=False, headers={"If-Match": etag} if etag else {}
            )
            return True

        def deleted() -> bool | None:
            try:
                self.get(entity_set, key, select=[self.key_of(entity_set)])
            except NotFound:
                return True
            return None

        _exactly_once(send, deleted)

    def create_multiple(self, entity_set: str, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create records with ``CreateMultiple``, one request per 1,000, each all or nothing;
        returns their keys in order. Keys are generated here for records without one, so a
        request whose answer was lost is settled by reading them back: created exactly once."""
        table = self._definition(entity_set)
        targets = [
            {**record, table.key: str(record.get(table.key) or new_key())} for record in records
        ]
        keys: list[str] = []
        for start in range(0, len(targets), MAX_BULK):
            chunk = [
                {**t, "@odata.type": table.qualified_type}
                for t in targets[start : start + MAX_BULK]
            ]
            chunk_keys = [t[table.key] for t in chunk]

            def send(chunk=chunk, chunk_keys=chunk_keys) -> list[str]:
                response = self.session.request(
                    "POST",
                    f"{entity_set}/{BULK_ACTION}CreateMultiple",
                    json={"Targets": chunk},
                    idempotent=False,
                )
                ids = self.session.json(response).get("Ids")
                if not isinstance(ids, list) or len(ids) != len(chunk_keys):
                    raise MalformedResponse(
                        "a CreateMultiple answer without one id per record",
                        status=response.status_code,
                        method="POST",
                        url=response.url,
                    )
                return [str(i) for i in ids]

            def created(chunk_keys=chunk_keys) -> list[str] | None:
                found = {
                    r[table.key]
                    for r in self.iter(
                        entity_set,
                        filter=odata.Prop(table.key).isin(chunk_keys),
                        select=[table.key],
                    )
                }
                return chunk_keys if found else None  # all or nothing: any one means all

            keys += _exactly_once(send, created)
        return keys

    def update_multiple(self, entity_set: str, records: Iterable[Mapping[str, Any]]) -> None:
        """Update existing records with ``UpdateMultiple``, one request per 1,000, each all or
        nothing. Every record carries its key property (``RecordWithoutKey`` otherwise)."""
        table = self._definition(entity_set)
        targets = []
        for record in records:
            if not record.get(table.key):
                raise RecordWithoutKey(f"a record to update has no '{table.key}': {record!r}")
            targets.append({**record, "@odata.type": table.qualified_type})
        for start in range(0, len(targets), MAX_BULK):
            self.session.request(
                "POST",
                f"{entity_set}/{BULK_ACTION}UpdateMultiple",
                json={"Targets": targets[start : start + MAX_BULK]},
                idempotent=True,
            )

    def bulk_messages(self, entity_set: str) -> frozenset[str]:
        """Which of ``CreateMultiple``, ``UpdateMultiple`` and ``UpsertMultiple`` the table
        supports: not every standard Dataverse table takes them. Read once (one request, as
        Microsoft's "Use bulk operation messages" shows: ``sdkmessagefilters`` of the table)
        and kept for the client's life."""
        if entity_set not in self._messages:
            table = self._definition(entity_set)
            names = " or ".join(f"sdkmessageid/name eq {odata.literal(m)}" for m in BULK_MESSAGES)
            filters = self._values(
                "sdkmessagefilters",
                {
                    "$select": "sdkmessagefilterid",
                    "$expand": "sdkmessageid($select=name)",
                    "$filter": f"primaryobjecttypecode eq {odata.literal(table.logical_name)} "
                    f"and ({names})",
                },
            )
            self._messages[entity_set] = frozenset(
                (f.get("sdkmessageid") or {}).get("name") for f in filters
            ) & frozenset(BULK_MESSAGES)
        return self._messages[entity_set]

    def whoami(self) -> dict[str, Any]:
        """``WhoAmI()``: the ``UserId``, ``BusinessUnitId`` and ``OrganizationId`` of the
        caller (for an application user, the user the client credentials act as)."""
        response = self.session.request("GET", "WhoAmI", idempotent=True)
        body = self.session.json(response)
        if not body.get("UserId"):
            raise MalformedResponse(
                "a WhoAmI answer without UserId",
                status=response.status_code,
                method="GET",
                url=response.url,
            )
        return body

    # batches, changes, metadata ---------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Collect operations, then send them as ``$batch`` requests when the block ends;
        each operation then carries its outcome (``Batch.send``)."""
        batch = Batch(self)
        yield batch
        batch.send()

    def changes(
        self, entity_set: str, select: Iterable[str] | None = None, delta_link: str | None = None
    ) -> Changes:
        """``change_pages`` gathered in memory: without ``delta_link``, every record and the
        link to changes from now on; with it, the records created or changed since, the keys
        of those deleted, and the next link. For large sets, use ``change_pages``."""
        changes = Changes()
        for page in self.change_pages(entity_set, select=select, link=delta_link):
            changes.changed.extend(page.records)
            changes.deleted.extend(page.deleted)
            changes.delta_link = page.delta_link or changes.delta_link
        if not changes.delta_link:
            raise MalformedResponse(
                "a change-tracking answer without @odata.deltaLink",
                method="GET",
                url=self.session.url(entity_set),
            )
        return changes

    def table(self, entity_set: str) -> Table:
        """The table's definition: logical name, key, primary name, object type code, and each
        attribute's type, lookup targets and option set labels. Read once (four requests)
        and kept for the client's life."""
        if entity_set not in self._tables:
            table = self._definition(entity_set)
            path = f"EntityDefinitions(LogicalName={odata.literal(table.logical_name)})/Attributes"
            reads = [
                (path, {"$select": "LogicalName,AttributeType"}),
                (
                    f"{path}/{BULK_ACTION}LookupAttributeMetadata",
                    {"$select": "LogicalName,Targets"},
                ),
                (
                    f"{path}/{BULK_ACTION}PicklistAttributeMetadata",
                    {"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
                ),
            ]
            parse_attributes(table, *(self._values(p, params) for p, params in reads))
            self._tables[entity_set] = table
        return self._tables[entity_set]

    def _definition(self, entity_set: str) -> Table:
        """The table's names and key, without its attributes (one request, kept)."""
        if entity_set not in self._definitions:
            items = self._values(
                "EntityDefinitions",
                {
                    "$select": TABLE_SELECT,
                    "$filter": f"EntitySetName eq {odata.literal(entity_set)}",
                },
            )
            if not items:
                raise UnknownTable(
                    f"the remote has no table with the entity set name '{entity_set}'",
                    status=404,
                    method="GET",
                    url=self.session.url("EntityDefinitions"),
                )
            self._definitions[entity_set] = parse_table(items[0])
        return self._definitions[entity_set]

    def _values(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        response = self.session.request("GET", path, params=params, idempotent=True)
        return _value_list(self.session.json(response), response)

    def metadata(self) -> dict[str, EntitySetInfo]:
        """The entity sets of the remote, from ``$metadata``."""
        response = self.session.request(
            "GET", "$metadata", idempotent=True, headers={"Accept": "application/xml"}
        )
        return parse_csdl(response.content)

    # helpers ------------------------------------------------------------------------------
    def key_of(self, entity_set: str) -> str:
        """The key property of an entity set: ``keys`` says, or the table's definition (read
        once): Dataverse's naming convention is wrong for ``emails`` (``activityid``) and
        ``customeraddresses`` (``customeraddressid``), among others."""
        return self._keys.get(entity_set) or self._definition(entity_set).key

    def _split(self, entity_set: str, filter: Filter, **options: Any) -> list[Filter]:
        """The filter as one or more filters whose URLs stay within the limit."""
        if not isinstance(filter, odata.Node):
            return [filter]
        others = urlencode(_query_options(**options)) + "&$top=5000&$filter="
        budget = MAX_URL_LENGTH - len(self.session.url(entity_set)) - len(others)
        return odata.split_for_length(filter, budget, measure=_encoded_length)


@dataclass(frozen=True)
class Top:
    """A read of the first ``top`` matching records (``CDMSClient.tops``), at most a page:
    one answer, whose ``$top`` the remote honours without paging."""

    filter: Filter
    top: int
    select: Iterable[str] | None = None
    orderby: Iterable[str] | None = None
    expand: Iterable[str] | None = None


@dataclass
class Page:
    """One answer of a collection read: its records, the keys of the records deleted (a
    change-tracking read only), where the read goes on (``next_link``, None on the last page)
    and, on the last page of a change-tracking read, the link to the changes from now on."""

    records: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    next_link: str | None = None
    delta_link: str | None = None


@dataclass
class Changes:
    changed: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    delta_link: str | None = None


def _is_deleted_entry(entry: dict[str, Any]) -> bool:
    return entry.get("reason") == "deleted" or "$deletedEntity" in str(
        entry.get("@odata.context", "")
    )


def _exactly_once(send: Callable[[], T], settled: Callable[[], T | None]) -> T:
    """Send a write whose answer may be lost. When its outcome is unknown (``ambiguous``),
    ``settled()`` reads the remote: the result if the write happened, None if it did not,
    and then it is sent once more. Should that read or the second send fail, the outcome is
    still unknown (the first attempt may yet be applied, served late): the error raised is
    ``ambiguous`` whatever its kind.

    A first attempt that timed out (``in_flight``) may still be being served: a read that
    does not find it applied only says "not yet", and a second send would let it land after
    a later write (a create after a delete of the record brings the record back). Its
    error is raised instead, still ambiguous."""
    try:
        return send()
    except CDMSError as error:
        if not error.ambiguous:
            raise
        lost = error
    try:
        result = settled()
    except CDMSError as error:
        _unknown(error, lost)
        raise
    if result is not None:
        return result
    if lost.in_flight:
        raise lost
    try:
        return send()
    except CDMSError as error:
        _unknown(error, lost)
        raise


def _unknown(error: CDMSError, lost: CDMSError) -> None:
    """``error`` ends a write whose answer ``lost`` was lost: its outcome is unknown."""
    error.ambiguous = True
    error.in_flight |= lost.in_flight


def _value_list(body: dict[str, Any], response: Any) -> list[dict[str, Any]]:
    """The ``value`` list of a collection answer, or ``MalformedResponse``."""
    values = body.get("value")
    if not isinstance(values, list):
        raise MalformedResponse(
            "a collection answer without a 'value' list",
            status=response.status_code,
            method="GET",
            url=response.url,
        )
    return values


def _prefer(page_size: int | None) -> str:
    return ",".join(filter(None, [page_size and f"odata.maxpagesize={page_size}", LOOKUP_NAMES]))


def _encoded_length(text: str) -> int:
    return len(quote(text, safe=""))


def _is_delta_link(link: str) -> bool:
    """A delta link, not a page of a read: it holds a ``$deltatoken`` and no ``$skiptoken``."""
    query = urlsplit(link).query
    return "$deltatoken=" in query and "$skiptoken=" not in query


def selected(link: str) -> list[str]:
    """The properties a read's link (a next or delta link) asks for: its ``$select``."""
    values = parse_qs(urlsplit(link).query).get("$select")
    return values[0].split(",") if values else []


def _with_select(link: str, select: Iterable[str]) -> str:
    """``link`` with its ``$select`` replaced (or added); the rest of it as it was."""
    value = "$select=" + quote(",".join(select), safe=",")
    parts = urlsplit(link)
    query = [q for q in parts.query.split("&") if q and not q.startswith("$select=")]
    return urlunsplit(parts._replace(query="&".join([value, *query])))


def _query_options(
    filter: Filter = None,
    select: Iterable[str] | None = None,
    orderby: Iterable[str] | None = None,
    expand: Iterable[str] | None = None,
) -> dict[str, str]:
    params: dict[str, str] = {}
    if filter is not None:
        params["$filter"] = odata.render(filter) if isinstance(filter, odata.Node) else filter
    if select:
        params["$select"] = ",".join(select)
    if orderby:
        params["$orderby"] = ",".join(orderby)
    if expand:
        params["$expand"] = ",".join(expand)
    return params
