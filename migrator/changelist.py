"""The admin's change list of a synced model (``django.contrib.admin.views.main``): one remote
read refreshes every row the filtered list can show, then Django counts and pages locally."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest

from cdms_api.errors import CDMSError

from .local import local_only, syncs
from .sync import refresh


class CDMSChangeList(ChangeList):
    """Django counts the filtered rows, then reads one page of them: each a remote read of
    its own. Here the filtered query (search, filters, ordering, ``list_select_related`` as
    ``$expand``) is refreshed once, which brings every row it can return up to date (the
    change feed's one request for a changes-backed model); the count and the page are then
    exact from the local tables.

    When the CRM cannot be read (an outage, more records than ``CDMS["MAX_SYNC_ROWS"]``) the
    list shows the local tables as last synced, under a warning saying why, so that the user
    can still narrow the list or open a row."""

    def get_results(self, request: HttpRequest) -> None:
        if syncs(self.queryset.query):
            try:
                refresh(self.queryset.query)
            except CDMSError as error:
                self.model_admin.message_user(
                    request,
                    f"The CRM was not read, so this list is the local copy as last synced: "
                    f"{error.message}",
                    messages.WARNING,
                )
        with local_only():
            super().get_results(request)
            len(self.result_list)  # read here, locally; the template uses the rows read
