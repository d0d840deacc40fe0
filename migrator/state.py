"""``SyncState``: how far each synced model's local table is in step with the remote, the
keys a full read has seen so far (``SeenKey``), and the records deleted (``Tombstone``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from . import local


class SyncState(models.Model):
    """One row per synced model. Between runs it holds what the next run starts from (the
    delta link, or the ``modifiedon`` watermark); during a run, the run's checkpoint, saved
    with each page in the page's own transaction, so a run stopped at any point resumes from
    the first page it had not written."""

    class Mode(models.TextChoices):
        CHANGES = "changes", "change tracking"
        WATERMARK = "watermark", "modifiedon watermark"

    class Status(models.TextChoices):
        NEVER = "never", "never synced"
        RUNNING = "running", "running"
        OK = "ok", "in step"
        RETRYING = "retrying", "retrying"
        FAILED = "failed", "failed"

    class Phase(models.TextChoices):
        IDLE = "", "no run in progress"
        FULL = "full", "full resync"
        INCREMENTAL = "incremental", "incremental resync"
        SWEEP = "sweep", "deletion sweep"

    model = models.CharField(max_length=200, unique=True, help_text="app_label.ModelName")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.CHANGES)
    delta_link = models.TextField(blank=True, help_text="where the next incremental run reads")
    watermark = models.DateTimeField(
        null=True,
        blank=True,
        help_text="the remote modifiedon up to which every change is in",
    )
    phase = models.CharField(max_length=20, choices=Phase.choices, blank=True, default="")
    checkpoint = models.TextField(
        blank=True, help_text="the link the run in progress goes on from (empty: its start)"
    )
    read_done = models.BooleanField(
        default=False, help_text="the run's read is complete; deleting what it did not see is left"
    )
    run_started_at = models.DateTimeField(null=True, blank=True)
    records_done = models.PositiveBigIntegerField(default=0)
    created = models.PositiveBigIntegerField(default=0)
    updated = models.PositiveBigIntegerField(default=0)
    deleted = models.PositiveBigIntegerField(default=0)
    last_full_at = models.DateTimeField(null=True, blank=True)
    last_incremental_at = models.DateTimeField(null=True, blank=True)
    last_sweep_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEVER)
    note = models.TextField(blank=True, help_text="what the last run said of itself")
    last_error = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True, help_text="the last cdms_verify")
    drift = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="differences the last cdms_verify found"
    )
    verify_report = models.JSONField(default=dict, blank=True, help_text="its counts and samples")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "sync state"
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model

    @classmethod
    def of(cls, model: type[models.Model]) -> SyncState:
        state, _ = cls.objects.get_or_create(model=model._meta.label)
        return state

    @property
    def last_run_at(self):
        runs = [t for t in (self.last_full_at, self.last_incremental_at) if t is not None]
        return max(runs, default=None)

    def partitioned_run(self) -> str | None:
        """What a partitioned full resync in progress has left (``migrator.partitions``),
        or None when none is. Its ranges are planned in a full run's phase, kept until it
        ends: with no run in progress, there are none to read."""
        if not self.phase:
            return None
        ranges = list(self.partitions.values_list("done", flat=True))
        if not ranges:
            return None
        return (
            f"a partitioned full resync is in progress ({sum(ranges)} of {len(ranges)} ranges read)"
        )

    @property
    def lag(self):
        """How long since the local table was last brought in step (None: never)."""
        return None if self.last_run_at is None else timezone.now() - self.last_run_at


class SyncPartition(models.Model):
    """One range of a partitioned full resync (``migrator.partitions``): the records created
    in ``[lower, upper)`` (an open end: no bound), read by a task of its own with a checkpoint
    of its own; the counts are added to the model's ``SyncState`` when every range is done."""

    state = models.ForeignKey(SyncState, on_delete=models.CASCADE, related_name="partitions")
    number = models.PositiveIntegerField()
    lower = models.DateTimeField(null=True, blank=True, help_text="createdon from (inclusive)")
    upper = models.DateTimeField(null=True, blank=True, help_text="createdon up to (exclusive)")
    checkpoint = models.TextField(blank=True, help_text="the link the read goes on from")
    done = models.BooleanField(default=False)
    records_done = models.PositiveBigIntegerField(default=0)
    created = models.PositiveBigIntegerField(default=0)
    updated = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["state", "number"]
        constraints = [
            models.UniqueConstraint(fields=["state", "number"], name="migrator_partition_unique")
        ]

    def __str__(self) -> str:
        return f"{self.state} partition {self.number}"


class SeenKey(models.Model):
    """The keys a full read (or a deletion sweep) has seen so far: one narrow row per record,
    written with each page in the page's transaction and emptied when the run ends. The local
    rows whose record is gone are then found by one anti-join, in constant memory, and a run
    killed halfway keeps what it had seen."""

    state = models.ForeignKey(SyncState, on_delete=models.CASCADE, related_name="+")
    key = models.UUIDField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["state", "key"], name="migrator_seenkey_unique")
        ]


class Tombstone(models.Model):
    """A record gone from the remote whose local row was deleted, with the version its row
    held: a page read before the deletion does not bring the row back
    (``migrator.tombstones``)."""

    entity_set = models.CharField(max_length=128)
    key = models.UUIDField()
    version = models.BigIntegerField()
    buried = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entity_set", "key"], name="migrator_tombstone_unique")
        ]


def mark_seen(state: SyncState, keys: list[str]) -> None:
    """Note keys the run in progress has read (again, after a resume: no harm)."""
    SeenKey.objects.bulk_create(
        [SeenKey(state=state, key=key) for key in keys], batch_size=1000, ignore_conflicts=True
    )


def forget_seen(state: SyncState) -> None:
    SeenKey.objects.filter(state=state).delete()


def unseen(model: type[models.Model], state: SyncState) -> models.QuerySet:
    """The local rows of ``model`` whose key the run did not see, among those the run can
    judge: synced rows (a remote key) not written locally since the run began, since a record
    created meanwhile may have been read before it existed."""
    seen = SeenKey.objects.filter(state=state, key=models.OuterRef("cdms_pk"))
    return (
        local.rows(model)
        .filter(cdms_pk__isnull=False, modified__lt=state.run_started_at)
        .exclude(models.Exists(seen))
    )
