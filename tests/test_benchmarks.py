"""The benchmarks run small here, so that they keep working; their figures are never checked
(``make benchmark`` runs them full size)."""

import pytest

from benchmarks import resync
from tests.resync_support import TEST_REDIS_URL, require_redis


@pytest.mark.django_db
def test_the_resync_benchmark_runs_small():
    require_redis()
    figures = resync.main(
        [
            "--sizes",
            "150",
            "300",
            "--changes",
            "3",
            "--page-size",
            "100",
            "--lock-url",
            TEST_REDIS_URL,
        ]
    )
    assert set(figures["sizes"]) == {150, 300}
    assert figures["incremental"]["incremental_requests"] == 1
