"""The test helpers users get: counting remote requests."""

import pytest

from core.models import Organisation
from migrator.testing import CDMSTestCaseMixin, assertNumRemoteCalls


def test_assert_num_remote_calls_passes_on_the_exact_count():
    with assertNumRemoteCalls(1) as calls:
        list(Organisation.objects.filter(name="Acme Holdings"))
    assert calls.calls[0].method == "GET" and "/accounts" in calls.calls[0].url


def test_assert_num_remote_calls_fails_with_the_requests_listed():
    expected = r"1 remote calls made, 0 expected:\n  GET .*accounts"
    with pytest.raises(AssertionError, match=expected), assertNumRemoteCalls(0):
        list(Organisation.objects.filter(name="Acme Holdings"))


def test_the_pytest_fixture_counts(cdms_remote_calls):
    list(Organisation.objects.filter(name="Acme Holdings"))
    list(Organisation.objects.skip_cdms().all())
    assert len(cdms_remote_calls) == 1


def test_the_fixture_for_the_context_manager(assert_num_remote_calls):
    with assert_num_remote_calls(0):
        list(Organisation.objects.skip_cdms().all())


def test_the_test_case_mixin():
    case = CDMSTestCaseMixin()
    with case.assertNumRemoteCalls(1):
        Organisation.objects.filter(employees__gt=1000).exists()
