"""The example app in the Django admin: organisations and contacts, synced through to the
CRM. Every action works as on any model: the change list reads through the remote, saves and
deletes write through, and "delete selected" deletes the records remotely (``qs.delete()``)."""

from django.contrib import admin

from .models import Contact, Organisation


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "employees", "uk_based", "parent"]
    search_fields = ["name"]
    list_select_related = ["parent"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["last_name", "first_name", "email", "organisation"]
    search_fields = ["last_name", "first_name"]
    list_select_related = ["organisation"]
    raw_id_fields = ["organisation", "parent_contact"]
