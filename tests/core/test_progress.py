"""Progress of long work: a bar on a terminal, log lines elsewhere, never mixed into stdout."""

from __future__ import annotations

import io

import structlog

from hub.progress import ProgressReporter


def test_off_a_terminal_progress_goes_to_the_log_with_total_and_eta():
    stream = io.StringIO()
    with structlog.testing.capture_logs() as logs, ProgressReporter(stream=stream, log_every=0) as progress:
        progress.advance("contacts", 50, total=200)
        progress.advance("contacts", 50)
    assert stream.getvalue() == ""
    lines = [e for e in logs if e["event"].startswith("progress")]
    assert lines[0]["task"] == "contacts" and lines[0]["total"] == 200 and lines[0]["done"] == 50
    assert lines[-1]["event"] == "progress finished" and lines[-1]["done"] == 100
    assert progress.done("contacts") == 100


def test_a_total_learnt_later_is_used():
    with structlog.testing.capture_logs() as logs, ProgressReporter(stream=io.StringIO(), log_every=0) as progress:
        progress.advance("deals", 10)
        progress.advance("deals", 10, total=40)
    assert [e["total"] for e in logs] == [None, 40, 40]
    assert logs[1]["eta_s"] is not None


def test_on_a_terminal_a_bar_shows_done_of_total():
    stream = io.StringIO()
    with ProgressReporter(stream=stream, bar=True) as progress:
        progress.advance("rows", 3, total=10)
    assert "3/10" in stream.getvalue()
