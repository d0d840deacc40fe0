"""``manage.py cdms_status``: each synced model's resync state and last verify at a glance,
then the remote requests the metrics counted (every process's with ``PROMETHEUS_MULTIPROC_DIR``)."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from migrator.metrics import summary
from migrator.state import SyncState
from migrator.synced import synced_models

COLUMNS = (
    "model",
    "mode",
    "status",
    "run",
    "last full",
    "last incremental",
    "lag",
    "counts",
    "verified",
    "drift",
)


class Command(BaseCommand):
    help = (
        "Show each synced model's resync state (mode, last runs, lag, counts, last error), "
        "what the last cdms_verify found, and the remote requests counted (the metrics)."
    )

    def handle(self, *args, **options) -> None:
        states = {state.model: state for state in SyncState.objects.all()}
        rows, errors = [], []
        for model in synced_models():
            label = model._meta.label
            state = states.get(label)
            if state is None:
                rows.append((label, "-", "never synced", *[""] * (len(COLUMNS) - 3)))
                continue
            rows.append(_row(state))
            if state.last_error:
                errors.append(f"{label}: {state.last_error}")
            if state.note:
                errors.append(f"{label}: {state.note}")
        widths = [max(len(str(row[i])) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
        for row in [COLUMNS, *rows]:
            self.stdout.write(
                "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
        for line in errors:
            self.stdout.write(line)
        if (counted := summary()) is not None:
            self.stdout.write(counted)


def _row(state: SyncState) -> tuple:
    run = ""
    if state.phase:
        run = f"{state.get_phase_display()}: {state.records_done} records so far"
    counts = f"+{state.created} ~{state.updated} -{state.deleted}"
    return (
        state.model,
        state.get_mode_display(),
        state.get_status_display(),
        run,
        _when(state.last_full_at),
        _when(state.last_incremental_at),
        _age(state.lag),
        counts,
        _when(state.verified_at),
        "" if state.drift is None else state.drift,
    )


def _when(moment) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def _age(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
