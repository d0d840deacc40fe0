"""No client secret, bearer token or ``Authorization`` header in any log line or exception
text, through runs with a wrong secret, expired tokens, retries and remote errors."""

from __future__ import annotations

import logging
import re
import traceback

import pytest
from django.test.utils import override_settings

from cdms_api.errors import AuthError, BadRequest, CDMSError
from core.models import Organisation
from migrator import remote

WRONG_SECRET = "wrong-secret-8f3e1c2d9a"


def token_in_use() -> str:
    tokens = remote.client().session.auth
    return tokens.cache.get(tokens.source.cache_key).token


def raised(call) -> str:
    """The text of every way an error raised by ``call`` may be shown."""
    with pytest.raises(CDMSError) as caught:
        call()
    error = caught.value
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


def test_no_secret_token_or_authorization_header_in_logs_or_errors(
    cdms_simulator, settings, caplog
):
    caplog.set_level(logging.DEBUG)
    texts, tokens = [], []
    read = lambda: list(Organisation.objects.filter(name__startswith="A"))  # noqa: E731

    wrong = {**settings.CDMS, "AUTH": {**settings.CDMS["AUTH"], "CLIENT_SECRET": WRONG_SECRET}}
    with override_settings(CDMS=wrong):
        texts.append(raised(read))
        assert AuthError.__name__ in texts[-1]

    read()
    tokens.append(token_in_use())
    cdms_simulator.tokens(expire_all=True)  # the next request is refused (401), then renewed
    read()
    tokens.append(token_in_use())
    assert tokens[0] != tokens[1]

    cdms_simulator.add_faults({"method": "GET", "path": "/accounts$", "status": 503, "times": 2})
    read()  # retried
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts$", "status": 400})
    texts.append(raised(read))
    assert BadRequest.__name__ in texts[-1]
    cdms_simulator.tokens(expire_all=True)
    cdms_simulator.add_faults({"path": "/oauth2/token$", "status": 503, "times": None})
    texts.append(raised(read))

    text = caplog.text + "\n".join(texts)
    assert "retrying in" in caplog.text  # the runs were logged
    for secret in [cdms_simulator.client_secret, WRONG_SECRET, *tokens]:
        assert secret not in text
    # a header as requests, urllib3 or http.client would show it (the traceback's source
    # lines that set it are fine)
    assert not re.search(r"authorization['\"]?\s*:\s", text, re.IGNORECASE)
    assert not re.search(r"bearer\s+[\w.~+/=-]{8,}", text, re.IGNORECASE)
