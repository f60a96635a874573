"""Schemathesis against the hub's own ``/openapi.json`` (in-process, the core and the telephony routes): for every
operation, requests made from its declared parameters and bodies, valid and invalid, never get a 5xx, and a
refused request stores nothing.

The quick run is part of every test run; ``FUZZ_EXAMPLES`` raises the examples per operation and mode for a
bigger run (the ``slow`` one below uses 100, unseeded).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import func, select

from crm_hub_plugins.telephony import plugin as telephony_plugin
from hub.core import schema as s
from hub.web.app import create_app

GENERIC_TOKEN = "generic-token-0123456789"
STREAMS = {"/api/calls/live/stream"}  # server-sent events: a request never ends by itself
TABLES = (s.clients, s.items, s.outbox, s.contact_points, s.refs, s.inbox, s.merges)


def stored(hub: Any) -> tuple[int, ...]:
    with hub.store.read() as conn:
        return tuple(int(conn.execute(select(func.count()).select_from(t)).scalar() or 0) for t in TABLES)


def telephony_hub(backend: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {
        "MANGO__API_KEY": "vpbx-key-1",
        "MANGO__API_SALT": "vpbx-salt-0123456789",
        "ZADARMA__KEY": "zd-key",
        "ZADARMA__SECRET": "zadarma-secret-0123456789",
        "GENERIC_TOKEN": GENERIC_TOKEN,
    }.items():
        monkeypatch.setenv(f"HUB_TELEPHONY__{name}", value)
    # Forged signatures are part of the fuzz: the limit on failed authentication would answer 429 to the rest.
    hub = backend.hub([("telephony", telephony_plugin)], http={"auth_failures": "100000/s burst 100000"})
    hub.prepare()
    return hub


@pytest.fixture
def fuzz_hub(backend: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    return telephony_hub(backend, monkeypatch)


def fuzz(hub: Any, examples: int, *, derandomize: bool = True) -> Counter[str]:
    """Every operation, ``examples`` positive and ``examples`` negative cases each; the answers counted by class."""
    app = create_app(hub)
    api = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "127.0.0.1"})
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for result in api.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run_operation(hub, operation, mode, examples, counts, failures, derandomize)
    assert not failures, "\n".join(failures[:20])
    return counts


def run_operation(
    hub: Any,
    operation: Any,
    mode: GenerationMode,
    examples: int,
    counts: Counter[str],
    failures: list[str],
    derandomize: bool,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=derandomize,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        before = stored(hub)
        response = case.call(base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {GENERIC_TOKEN}"})
        counts["requests"] += 1
        code = response.status_code
        counts[f"{code // 100}xx"] += 1
        counts[f"  {code}"] += 1
        where = f"{case.method} {case.formatted_path} ({mode.value})"
        if code >= 500:
            failures.append(f"{where}: {code} {response.text[:200]}")
        elif code >= 400:
            if stored(hub) != before:
                failures.append(f"{where}: refused with {code} but stored something")
            if "json" in response.headers.get("content-type", "") and "error" not in response.json():
                failures.append(f"{where}: {code} without an 'error' naming the problem")

    try:
        one()
    except Unsatisfiable:  # an operation that takes nothing has no invalid request to make
        assert mode is GenerationMode.NEGATIVE, where_of(operation)


def where_of(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def report(counts: Counter[str], kind: str) -> None:
    print(f"\nschemathesis on {kind}: {dict(sorted(counts.items()))}")


def test_schemathesis_finds_no_5xx_and_nothing_stored_from_a_refused_request(fuzz_hub: Any, backend: Any) -> None:
    counts = fuzz(fuzz_hub, int(os.environ.get("FUZZ_EXAMPLES", "8")))
    report(counts, backend.kind)
    assert counts["5xx"] == 0 and counts["4xx"] > 0 and counts["2xx"] > 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_schemathesis_bigger_run(embedded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = telephony_hub(embedded, monkeypatch)
    counts = fuzz(hub, 100, derandomize=False)
    report(counts, "embedded (slow run)")
    assert counts["5xx"] == 0


def test_every_core_and_telephony_operation_declares_what_it_takes(fuzz_hub: Any) -> None:
    spec: dict[str, Any] = create_app(fuzz_hub).openapi()
    paths: dict[str, dict[str, Any]] = spec["paths"]
    takes: Callable[[dict[str, Any]], bool] = lambda op: bool(op.get("parameters") or op.get("requestBody"))  # noqa: E731
    for path, method in [
        ("/api/observations", "post"),
        ("/api/clients/{client_id}", "get"),
        ("/webhooks/telephony/mango/events/{kind}", "post"),
        ("/webhooks/telephony/zadarma", "post"),
        ("/webhooks/telephony/zadarma", "get"),
        ("/webhooks/telephony/generic", "post"),
        ("/api/calls", "post"),
        ("/api/calls/stats", "get"),
        ("/api/calls/{request_id}", "get"),
    ]:
        assert takes(paths[path][method]), (method, path)
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operation ids are unique"
