"""When and how long to wait before trying a request again."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Statuses worth another try: throttling and the transient gateway/server errors.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Of those, the ones after which the remote may have applied the request anyway.
AMBIGUOUS_STATUSES = frozenset({502, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, honouring ``Retry-After``, bounded both by
    a number of attempts and by a total time budget."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    budget_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:  # the remote's word; the time budget bounds it
            return max(retry_after, 0.0)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)
