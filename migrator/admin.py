"""The Django admin for ``SyncState``: each synced model's resync state, read-only (resyncs
write it; ``manage.py cdms_resync`` or the Celery tasks start them)."""

from __future__ import annotations

from django.contrib import admin

from .state import SyncState


@admin.register(SyncState)
class SyncStateAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "mode",
        "status",
        "phase",
        "records_done",
        "last_full_at",
        "last_incremental_at",
        "created",
        "updated",
        "deleted",
        "verified_at",
        "drift",
        "last_error",
    ]
    list_filter = ["mode", "status"]
    search_fields = ["model"]
    fieldsets = [
        (None, {"fields": ["model", "mode", "status", "note", "last_error"]}),
        ("Where the next run starts", {"fields": ["delta_link", "watermark"]}),
        (
            "The run in progress",
            {"fields": ["phase", "checkpoint", "read_done", "run_started_at", "records_done"]},
        ),
        (
            "Last runs",
            {
                "fields": [
                    "last_full_at",
                    "last_incremental_at",
                    "last_sweep_at",
                    "created",
                    "updated",
                    "deleted",
                    "updated_at",
                ]
            },
        ),
        ("The last verify (cdms_verify)", {"fields": ["verified_at", "drift", "verify_report"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
