"""Progress: sink catch-up after a bulk load is logged with done, total and an ETA; off a terminal, progress
goes to the log on stderr and never into a command's output."""

from __future__ import annotations

import io
import json
import time

from hub.core.catchup import CatchUp
from hub.core.events import ClientObservation, SourceRef
from hub.core.logging import configure_logging
from tests.conftest import wait_for
from tests.core.sinks import RecordingSink, SinkPlugin
from tests.ops.daemon import hub_cli, hub_env


class SlowSink(RecordingSink):
    def deliver(self, events):
        time.sleep(0.05)
        super().deliver(events)


def test_sink_catch_up_after_a_bulk_load_is_logged_with_total_and_eta(embedded):
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    sink = SlowSink("crm", "bitrix24")
    hub = embedded.hub([("s", SinkPlugin(sink))])
    hub.ingest_many(
        [
            ClientObservation(source=SourceRef(system="excel", entity="row", id=str(i)), phones=[f"+7916{i:07d}"])
            for i in range(400)
        ]
    )
    catch_up = CatchUp(hub, threshold=50, every=0.2, log_every=0.0)
    catch_up.start()  # the backlog is there before the workers start, as after a bulk load
    hub.start("all")
    try:
        wait_for(lambda: len(sink.event_ids()) == 400, timeout=60)
        wait_for(lambda: "caught up" in stream.getvalue(), timeout=20)
    finally:
        catch_up.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    steps = [line for line in lines if line["event"] == "progress" and line["task"].startswith("catch-up")]
    assert steps, "no catch-up progress was logged"
    assert all(step["total"] >= step["done"] for step in steps)
    # a broker counts only messages still waiting: what a worker has prefetched (up to 64 here) is not in it
    assert any(step["total"] >= 400 - 64 and step["eta_s"] is not None for step in steps)
    finished = [line for line in lines if line["event"] == "progress finished"]
    assert finished and all(line["done"] == line["total"] for line in finished)


def test_ingest_off_a_terminal_keeps_stdout_to_its_result(embedded, tmp_path):
    source = tmp_path / "obs.jsonl"
    rows = [
        {"kind": "client", "source": {"system": "excel", "entity": "row", "id": str(i)}, "phones": [f"+7916{i:07d}"]}
        for i in range(30)
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n", "utf-8")
    result = hub_cli(hub_env(embedded, HUB_LOG_LEVEL="info"), "ingest", str(source))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "30 applied, 0 unchanged, 0 rejected\n"
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    done = [line for line in logged if line["event"] == "progress finished"]
    assert done and done[0]["task"] == "ingest" and done[0]["done"] == done[0]["total"] == 30
