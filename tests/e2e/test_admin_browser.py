"""The admin as a user drives it in Chromium: log in, search, filter, edit an organisation
and see the change in the CRM, a conflict and its message, deleting two organisations."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core.models import Organisation
from tests.seeded import ACME, NORTHWIND, WIDGETS, demo_key

ORGANISATIONS = "/admin/core/organisation/"


def rows(page) -> list[str]:
    return page.locator("#result_list tbody th a").all_inner_texts()


def open_northwind(steps, name: str) -> None:
    with steps.step(name) as page:
        steps.go(ORGANISATIONS)
        page.click(f"#result_list a:text-is('{NORTHWIND}')")
        expect(page.locator("#id_name")).to_have_value(NORTHWIND)


def test_search_filter_and_edit(steps, admin_user_password, crm):
    steps.log_in(*admin_user_password)
    with steps.step("organisations") as page:
        page.click("text=Organisations")
        expect(page.locator("#result_list")).to_be_visible()
        assert NORTHWIND in rows(page) and ACME in rows(page)
    with steps.step("search") as page:
        page.fill("#searchbar", "acme")
        page.press("#searchbar", "Enter")
        expect(page.locator("#result_list tbody tr")).to_have_count(2)
        assert sorted(rows(page)) == [ACME, WIDGETS]
    with steps.step("filter") as page:
        steps.go(ORGANISATIONS)
        page.click("#changelist-filter a[href*='uk_based__exact=1']")
        expect(page).to_have_url(re.compile(r"uk_based__exact=1"))
        # the URL changes when the navigation starts: the filtered list is the one whose
        # filter shows as chosen
        chosen = page.locator("#changelist-filter li.selected a[href*='uk_based__exact=1']")
        expect(chosen.first).to_be_visible()
        shown = rows(page)
        assert shown and NORTHWIND not in shown
    open_northwind(steps, "edit")
    with steps.step("saved") as page:
        page.fill("#id_employees", "4321")
        page.click("input[name=_save]")
        expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    assert crm.record(Organisation, demo_key(NORTHWIND))["numberofemployees"] == 4321


def test_a_conflict_shows_the_crms_message_and_reloads(steps, admin_user_password, crm):
    steps.log_in(*admin_user_password)
    open_northwind(steps, "opened")
    crm.change(NORTHWIND, numberofemployees=77)  # another user, meanwhile
    with steps.step("conflict") as page:
        page.fill("#id_employees", "88")
        page.click("input[name=_save]")
        expect(page.locator(".errornote, .errorlist.nonfield")).not_to_have_count(0)
        expect(page.locator(".errorlist.nonfield")).to_contain_text(
            "changed in the CRM after you opened it"
        )
        expect(page.locator("#id_employees")).to_have_value("88")  # the input is kept
    assert crm.record(Organisation, demo_key(NORTHWIND))["numberofemployees"] == 77
    with steps.step("reloaded") as page:
        page.click("a.cdms-reload")
        expect(page.locator("#id_employees")).to_have_value("77")


def test_delete_two_organisations(steps, admin_user_password, crm):
    doomed = [crm.add(name)["accountid"] for name in ("Doomed One", "Doomed Two")]
    steps.log_in(*admin_user_password)
    with steps.step("selected") as page:
        steps.go(ORGANISATIONS + "?q=doomed")
        expect(page.locator("#result_list tbody tr")).to_have_count(2)
        for checkbox in page.locator("#result_list tbody input.action-select").all():
            checkbox.check()
        page.select_option("select[name=action]", "delete_selected")
    with steps.step("confirm") as page:
        page.click("button[name=index]")
        expect(page.locator("#content h1")).to_have_text("Delete multiple objects")
    with steps.step("deleted") as page:
        page.click("input[type=submit]")
        expect(page.locator(".messagelist .success")).to_contain_text(
            "Successfully deleted 2 organisations"
        )
    assert [crm.record(Organisation, key) for key in doomed] == [None, None]


def test_a_failed_step_saves_the_page(steps):
    with pytest.raises(AssertionError), steps.step("broken"):
        steps.go("/admin/login/")
        raise AssertionError("the step failed")
    assert "Django administration" in (steps.folder / "01-broken.html").read_text()
    assert (steps.folder / "01-broken-failed.png").stat().st_size > 0
    assert not (steps.folder / "01-broken.png").exists()
