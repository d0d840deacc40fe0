"""The example app in the Django admin: organisations and contacts, synced through to the
CRM (``migrator.admin.CDMSModelAdmin``). A change list page costs one remote read; saves and
deletes write through, and the CRM's refusals are shown on the page."""

from django.contrib import admin

from migrator.admin import CDMSModelAdmin

from .models import Contact, Organisation


@admin.register(Organisation)
class OrganisationAdmin(CDMSModelAdmin):
    list_display = ["name", "employees", "uk_based", "founded_on", "parent"]
    list_display_links = ["name"]
    list_filter = ["uk_based", "founded_on"]
    search_fields = ["name", "website"]  # contains(name,'...') on the remote
    ordering = ["name"]
    list_select_related = ["parent"]  # the parent's name comes with the read ($expand)
    raw_id_fields = ["parent"]  # a select of every organisation would read them all


@admin.register(Contact)
class ContactAdmin(CDMSModelAdmin):
    list_display = ["last_name", "first_name", "email", "organisation"]
    list_filter = [("organisation", admin.EmptyFieldListFilter), "birth_date"]
    search_fields = ["last_name", "first_name", "email"]
    ordering = ["last_name", "first_name"]
    list_select_related = ["organisation"]
    raw_id_fields = ["organisation", "parent_contact"]
