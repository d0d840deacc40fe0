"""The N+1 warning: the same single-record read, with other keys, many times in a row."""

from __future__ import annotations

import logging

import pytest

from cdms_api.session import RequestRecord
from core.models import Contact
from migrator.nplusone import RepeatedRequestWarning, single_record_shape
from migrator.testing import assertNumRemoteCalls

KEY = "2faef9cc-507e-519d-a449-682b0526b00d"
URL = "https://crm.example/api/data/v9.2/"


def record(method: str, path: str, attempt: int = 1, **params: str) -> RequestRecord:
    return RequestRecord(method, URL + path, 200, 0.01, attempt, None, params)


def test_a_read_by_key_has_the_shape_of_its_kind():
    by_filter = single_record_shape(record("GET", "accounts", **{"$filter": f"accountid eq {KEY}"}))
    assert by_filter == "/api/data/v9.2/accounts?$filter=accountid eq <key>"
    assert single_record_shape(record("GET", f"accounts({KEY})", **{"$select": "name"})) == (
        "/api/data/v9.2/accounts(<key>)&$select=name"
    )
    assert single_record_shape(record("GET", "accounts", **{"$filter": "name eq 'Acme'"})) is None
    assert single_record_shape(record("PATCH", f"accounts({KEY})")) is None
    assert single_record_shape(record("GET", "accounts")) is None


@pytest.fixture
def contacts(synced) -> list[Contact]:
    """The five contacts that have an organisation, each a different one."""
    return list(Contact.objects.skip_cdms().filter(organisation__isnull=False).order_by("pk"))


def test_reading_related_rows_one_by_one_warns_naming_the_call_site(contacts, caplog):
    assert len(contacts) == 5
    with (
        caplog.at_level(logging.WARNING, logger="migrator"),
        pytest.warns(RepeatedRequestWarning, match=r"the N\+1 pattern") as warned,
    ):
        for contact in contacts:
            _ = contact.organisation  # one read each
    [warning] = warned.list
    assert warning.filename == __file__
    assert "test_reading_related_rows_one_by_one" in str(warning.message)
    assert "select_related()" in str(warning.message)
    assert any("the N+1 pattern" in r.getMessage() for r in caplog.records)


def test_assert_num_remote_calls_fails_on_it(contacts):
    with (
        pytest.warns(RepeatedRequestWarning),
        pytest.raises(AssertionError, match=r"the N\+1 pattern"),
        assertNumRemoteCalls(5),
    ):
        for contact in contacts:
            _ = contact.organisation


def test_one_query_does_not_warn(contacts, recwarn):
    with assertNumRemoteCalls(1):
        rows = Contact.objects.select_related("organisation").filter(organisation__isnull=False)
        assert len({c.organisation.name for c in rows}) == 5
    assert not [w for w in recwarn.list if w.category is RepeatedRequestWarning]


def test_other_requests_in_between_break_the_run(contacts, recwarn):
    for contact in contacts:
        _ = contact.organisation
        Contact.objects.filter(last_name="Nobody").exists()
    assert not [w for w in recwarn.list if w.category is RepeatedRequestWarning]


def test_the_threshold_is_a_setting(settings, contacts, recwarn):
    settings.CDMS = {**settings.CDMS, "N_PLUS_ONE_THRESHOLD": 0}
    for contact in contacts:
        _ = contact.organisation
    assert not [w for w in recwarn.list if w.category is RepeatedRequestWarning]
    settings.CDMS = {**settings.CDMS, "N_PLUS_ONE_THRESHOLD": 3}
    with pytest.warns(RepeatedRequestWarning, match="3 remote reads"):
        for contact in Contact.objects.skip_cdms().filter(pk__in=[c.pk for c in contacts[:3]]):
            _ = contact.organisation
