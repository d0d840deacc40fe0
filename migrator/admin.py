"""``django.contrib.admin`` for synced models: ``CDMSModelAdmin``, and the admin of each synced
model's resync state (``SyncState``).

``CDMSModelAdmin`` is a ``ModelAdmin`` whose pages cost few remote requests and tell the user
what the CRM said:

- the change list refreshes the rows it can show in one read (with ``$expand`` for
  ``list_select_related``; one change feed request for a changes-backed model), then counts
  and pages locally (``changelist.CDMSChangeList``);
- the remote fields are editable, the ``cdms_*`` fields and timestamps read-only;
- a save the CRM refuses (validation error, 412 conflict, outage) shows the CRM's message on
  the form with the user's input kept, and changes nothing locally; a save is sent with the
  ETag of the record as the form showed it, so a change made in the CRM meanwhile is a
  conflict, never overwritten;
- "delete selected" deletes the records remotely in one ``$batch``; refusals are shown;
- actions: refresh the selected rows from the CRM (one read by key), and a button queueing a
  resync of the model (Celery).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from cdms_api.errors import CDMSError, PreconditionFailed, ServerError, Throttled, TransportError
from cdms_api.extras import MissingExtra

from .changelist import CDMSChangeList
from .local import local_only
from .state import SyncState
from .sync import recheck

#: the fields the CRM and the sync engine keep, shown read-only
CRM_FIELDS = ("cdms_pk", "cdms_modified", "cdms_etag", "created", "modified")
#: the form's hidden field holding the ETag of the record as the form showed it
VERSION = "cdms_version"
#: where a refused save leaves the CRM's error on the request, for the form shown again
_REJECTED = "_cdms_rejected"


def remote_message(error: CDMSError) -> str:
    """What to tell a user of the admin about a failed remote call: the CRM's own message,
    what happened to their change, and the request id to quote to its administrators."""
    said = error.message + (f" (request id {error.request_id})" if error.request_id else "")
    if isinstance(error, PreconditionFailed):
        return f"The record was changed in the CRM after you opened it; nothing was saved. {said}"
    if isinstance(error, ServerError | TransportError | Throttled):
        return f"The CRM is unavailable; nothing was saved, try again later. {said}"
    return f"The CRM refused the change: {said}"


class CDMSModelForm(forms.ModelForm):
    """The admin's form of a synced model: carries the ETag the record had when the form
    was shown (``cdms_version``), and the CRM's message when it refused the save."""

    cdms_version = forms.CharField(widget=forms.HiddenInput, required=False)
    #: set on the form class made to show a refused save again (``CDMSModelAdmin.get_form``)
    cdms_rejection: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[VERSION].initial = self.instance.cdms_etag

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.cdms_rejection:
            raise ValidationError(self.cdms_rejection)
        return cleaned


class CDMSModelAdmin(admin.ModelAdmin):
    form = CDMSModelForm
    change_list_template = "admin/migrator/cdms_change_list.html"
    change_form_template = "admin/migrator/cdms_change_form.html"
    actions = ["refresh_from_crm", "delete_selected"]
    #: the number of all rows next to a filtered count costs a read of every record
    show_full_result_count = False
    #: each filter's counts would cost a read of their own
    show_facets = admin.ShowFacets.NEVER

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[CDMSChangeList]:
        return CDMSChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + [name for name in CRM_FIELDS if name not in readonly]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        """The model's fields, then the CRM's (collapsed, on existing rows only); fieldsets
        of the admin's own get the hidden ETag field added to their first."""
        if self.fieldsets:
            fieldsets = [(name, dict(options)) for name, options in self.fieldsets]
            if VERSION not in flatten_fieldsets(fieldsets):
                first = fieldsets[0][1]
                first["fields"] = [*first["fields"], VERSION]
            return fieldsets
        fields = [f for f in self.get_fields(request, obj) if f not in CRM_FIELDS]
        fieldsets = [(None, {"fields": fields})]
        if obj is not None:
            fieldsets.append(("In the CRM", {"fields": CRM_FIELDS, "classes": ["collapse"]}))
        return fieldsets

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        error = getattr(request, _REJECTED, None)
        if error is None:
            return form
        return type(form.__name__, (form,), {"cdms_rejection": self._rejection(request, error)})

    def _rejection(self, request: HttpRequest, error: CDMSError) -> str:
        if isinstance(error, PreconditionFailed):
            return format_html(
                '{} <a href="{}" class="cdms-reload">Reload the record from the CRM</a> '
                "(your input here is then lost) and make your change again.",
                remote_message(error),
                request.path,
            )
        return remote_message(error)

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool):
        if change and form.cleaned_data.get(VERSION):
            # the record as the user saw it: a change made in the CRM since is a conflict
            obj.cdms_etag = form.cleaned_data[VERSION]
        super().save_model(request, obj, form, change)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except CDMSError as error:
            if hasattr(request, _REJECTED):
                raise
            if request.method == "POST":
                # Django's transaction rolled the local write back. The form is shown again
                # with the user's input and the CRM's message, from the local tables as they
                # were (the CRM may be unreachable).
                setattr(request, _REJECTED, error)
            else:
                self.message_user(
                    request,
                    f"The CRM was not read, so this page shows the local copy as last synced: "
                    f"{error.message}",
                    messages.WARNING,
                )
            with local_only():
                return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except CDMSError as error:
            self.message_user(request, remote_message(error), messages.ERROR)
            opts = self.opts
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id])
            return HttpResponseRedirect(url)

    @admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
    def delete_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Django's action (a confirmation page, then ``delete_queryset``: the records deleted
        in one ``$batch``), with the CRM's refusals shown instead of an error page."""
        try:
            return admin_actions.delete_selected(self, request, queryset)
        except CDMSError as error:
            self.message_user(request, remote_message(error), messages.ERROR)
            return None

    @admin.action(description="Refresh the selected %(verbose_name_plural)s from the CRM")
    def refresh_from_crm(self, request: HttpRequest, queryset: QuerySet) -> None:
        keys = {
            str(key)
            for key in queryset.skip_cdms().exclude(cdms_pk=None).values_list("cdms_pk", flat=True)
        }
        gone = recheck(self.model, keys) if keys else set()
        names = self.opts.verbose_name_plural
        self.message_user(request, f"{len(keys) - len(gone)} {names} refreshed from the CRM.")
        if gone:
            self.message_user(
                request,
                f"{len(gone)} {names} no longer in the CRM were deleted here.",
                messages.WARNING,
            )

    def get_urls(self) -> list:
        opts = self.opts
        resync = path(
            "resync/",
            self.admin_site.admin_view(self.resync_view),
            name=f"{opts.app_label}_{opts.model_name}_resync",
        )
        return [resync, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        opts = self.opts
        context = {
            "cdms_resync_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_resync"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def resync_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a resync of the model (``migrator.tasks.resync_model``), then show the
        change list again."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        opts = self.opts
        try:
            queue_resync(opts.label)
        except ResyncNotQueued as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(
                request,
                format_html(
                    'A resync of the {} is queued: its progress is under <a href="{}">sync '
                    "states</a>.",
                    opts.verbose_name_plural,
                    reverse("admin:migrator_syncstate_changelist"),
                ),
            )
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        return HttpResponseRedirect(changelist)


class ResyncNotQueued(Exception):
    """A resync the admin could not hand to Celery, with the reason in the user's words."""


def queue_resync(label: str) -> None:
    """Hand ``label``'s resync to the Celery worker, or raise ``ResyncNotQueued`` saying why:
    Celery is an optional extra, and the broker may be down."""
    try:
        from . import tasks
    except MissingExtra as error:
        raise ResyncNotQueued(f"No resync was queued: {error}") from None
    from kombu.exceptions import OperationalError

    try:
        tasks.resync_model.delay(label)
    except OperationalError as error:
        raise ResyncNotQueued(
            f"No resync was queued: the Celery broker cannot be reached ({error})."
        ) from None


@admin.register(SyncState)
class SyncStateAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "mode",
        "status",
        "phase",
        "last_run",
        "lag",
        "records_done",
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
                    "last_run",
                    "lag",
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

    @admin.display(description="last run")
    def last_run(self, state: SyncState):
        return state.last_run_at

    @admin.display(description="lag")
    def lag(self, state: SyncState) -> str:
        """How long ago the last run ended: changes in the CRM since then may not be here."""
        if state.last_run_at is None:
            return "never synced"
        seconds = int((timezone.now() - state.last_run_at).total_seconds())
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields] + ["last_run", "lag"]

    def has_add_permission(self, request) -> bool:
        return False
