"""Resyncs run in this process, each with a progress bar (records done, rate, and the time
left when the remote's count is known): what ``manage.py cdms_resync`` does in the
foreground, and what a script or a demo can call::

    from migrator.progress import resync_with_progress
    resync_with_progress([Organisation], full=True)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm

from .resync import Outcome, Progress, resync
from .synced import synced_models

if TYPE_CHECKING:
    from .models import CDMSModel


def resync_with_progress(
    models: Iterable[type[CDMSModel]] | None = None,
    full: bool = False,
    out: TextIO = sys.stdout,
    bars: TextIO | None = sys.stderr,
) -> bool:
    """Resync each model (every synced model by default, related ones first) with a bar on
    ``bars`` (None: no bar), then write what it did on ``out``. A model that fails is
    reported and the others still run (its error is in its ``SyncState`` too). Returns
    whether every one succeeded."""
    succeeded = True
    for model in synced_models() if models is None else models:
        label = model._meta.label
        with tqdm(desc=label, unit=" records", file=bars, disable=bars is None) as bar:
            try:
                outcome: Outcome = resync(model, full=full, progress=_advancing(bar))
            except Exception as error:  # reported, and the exit status says so
                out.write(f"{label}: failed: {type(error).__name__}: {error}\n")
                succeeded = False
                continue
        out.write(f"{outcome}\n")
    return succeeded


def _advancing(bar: tqdm) -> Progress:
    def progress(done: int, total: int | None) -> None:
        if total is not None and bar.total != max(total, done):
            bar.total = max(total, done)  # the remote's count is an estimate
        bar.update(done - bar.n)

    return progress
