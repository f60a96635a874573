"""The call pop-up stream: an operator sees the calls of their own extension only."""

from __future__ import annotations

from crm_hub_plugins.telephony.api import sse
from hub.web.console.calls import _for_extension


def test_only_calls_of_the_operators_extension_and_their_end_pass():
    shown: set[str] = set()
    mine = sse("ringing", {"key": "a", "extension": "101", "number": "+79161234567"})
    theirs = sse("ringing", {"key": "b", "extension": "102", "number": "+79031112233"})
    assert _for_extension(mine, "101", shown)
    assert not _for_extension(theirs, "101", shown)
    assert not _for_extension(sse("ended", {"key": "b"}), "101", shown)  # a call never shown does not end here
    assert _for_extension(sse("ended", {"key": "a"}), "101", shown)
    assert _for_extension(b": keepalive\n\n", "101", shown)


def test_a_stranger_gets_no_stream(browser):
    b = browser()
    answer = b.http.get("/console/calls/stream", headers={"accept": "text/event-stream"})
    assert answer.status_code == 401
