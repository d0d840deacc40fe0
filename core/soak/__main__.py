"""A soak process: ``python -m core.soak '{"prefix": .., "threads": .., "operations": ..,
"seed": ..}'``, on the database and ``CDMS`` settings ``core.worker_settings`` reads from the
environment; prints its tally as JSON."""

import json
import sys

import django

django.setup()

from core.soak.run import count_retries  # noqa: E402  (after django.setup())
from core.soak.work import work  # noqa: E402

spec = json.loads(sys.argv[1])
retries = count_retries()
tally = work(spec["prefix"], spec["threads"], spec["operations"], spec["seed"])
print(json.dumps({**tally.as_dict(), "retries": retries()}))
