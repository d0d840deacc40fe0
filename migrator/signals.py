"""Signals of inbound changes: the rows a sync writes because the remote changed.

A sync write is not a ``save()``: the rows of a page are written in one bulk statement. So
that receivers still hear of them, each row created or updated fires ``post_save`` (with
``created``, and ``cdms_sync=True`` among the keyword arguments) and each row deleted fires
``pre_delete``/``post_delete`` (through Django's own deletion, cascades included), within the
page's transaction. ``is_inbound()`` is true in any receiver called for such a write, which is
how a receiver tells a sync write from a user's write::

    @receiver(post_save, sender=Organisation)
    def on_save(sender, instance, created, **kwargs):
        if migrator.signals.is_inbound():
            return  # the CRM changed it: nothing to send back

``records_synced`` is sent once per page, after the page's transaction commits, with the
remote keys of the records created, updated and deleted locally (lists of ``str``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from django.dispatch import Signal

#: sender: the model; created, updated, deleted: the remote keys (str) of the page's rows
records_synced = Signal()

_inbound = contextvars.ContextVar("cdms_inbound", default=False)


def is_inbound() -> bool:
    """True while the sync writes rows the remote changed (in receivers of their signals)."""
    return _inbound.get()


@contextlib.contextmanager
def inbound() -> Iterator[None]:
    """Mark the writes of the block as inbound changes."""
    token = _inbound.set(True)
    try:
        yield
    finally:
        _inbound.reset(token)
