"""The plain ``requests`` loop every read benchmark compares with: follow ``@odata.nextLink``
with ``Prefer: odata.maxpagesize``, as any Dataverse client would, and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import requests

PAGE_SIZE = 5000


def pages(
    session: requests.Session,
    url: str,
    params: dict[str, str] | None = None,
    page_size: int | None = PAGE_SIZE,
) -> Iterator[list[dict]]:
    """The records of each page of a read, in order. No page size for a read with ``$top``,
    which Dataverse answers in one page (with a page size, it pages and ignores ``$top``)."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    next_url: str | None = url
    while next_url:
        response = session.get(next_url, params=params, headers=headers, timeout=60)
        response.raise_for_status()
        page = response.json()
        yield page["value"]
        next_url, params = page.get("@odata.nextLink"), None


def read_all(session: requests.Session, url: str, params: dict[str, str] | None = None) -> int:
    """How many records a paged read returns."""
    return sum(len(page) for page in pages(session, url, params))
