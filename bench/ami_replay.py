"""Replay every recorded and constructed Asterisk session over TCP into a running hub; report, per flow, the
calls each outside number got against what it should get (calls, answered, operator, transfer chain).

Run: ``python bench/ami_replay.py [--baseline REV] [--markdown]``. Each session goes to the hub's AMI listener
through the AMI sandbox on loopback, its writes cut every few bytes (a different size per session, so UTF-8
characters are split at every offset somewhere), and the connection is dropped halfway through the session;
after the reconnect the last 20 events before the drop are sent again. Every packet with non-ASCII text is also
fed to the decoder split at each of its byte offsets. ``--baseline REV`` adds what the tracker of that git
revision gave for the same sessions (fed directly, no TCP). Exit status 1 when any flow differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_hub_plugins.telephony import plugin as telephony_plugin  # noqa: E402
from crm_hub_plugins.telephony.ami import AMIDecoder  # noqa: E402
from crm_hub_plugins.telephony.calls import CallRecord  # noqa: E402
from crm_hub_plugins.telephony.flows import Outcome, expected_outcome, flows, outcomes  # noqa: E402
from crm_hub_plugins.telephony.sandbox import AMISandbox, encode_packet, load_ami_session  # noqa: E402
from hub.core.hub import Hub  # noqa: E402
from hub.core.logging import configure_logging  # noqa: E402
from hub.core.plugins import PluginHost  # noqa: E402
from hub.core.settings import load_settings  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "telephony" / "ami"
AmiEvent = dict[str, str]


def sessions() -> list[tuple[str, str, list[AmiEvent], dict[str, Outcome]]]:
    """(name, what, events, expected per outside number): the recorded sessions, then the constructed flows."""
    recorded = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    found = []
    for path in sorted(FIXTURES.glob("*.json")):
        if path.stem == "expected":
            continue
        expected = {
            e["number"]: Outcome(e["calls"], e["answered"], e["operator"], tuple(e["operators"]), e["direction"])
            for e in recorded[path.stem]
        }
        found.append((path.stem, "recorded (cacofonisk)", load_ami_session(path), expected))
    for flow in flows():
        found.append((flow.name, flow.what, flow.events, {e.number: expected_outcome(e) for e in flow.expected}))
    return found


def decoder_splits(events: Iterable[AmiEvent]) -> tuple[int, int]:
    """Feed each non-ASCII packet to a decoder split at every byte offset; return (packets, splits)."""
    packets = splits = 0
    for event in events:
        data = encode_packet(event)
        if data.isascii():
            continue
        packets += 1
        for offset in range(1, len(data)):
            decoder = AMIDecoder()
            decoder.feed(b"Asterisk Call Manager/5.0.1\r\n")
            got = decoder.feed(data[:offset]) + decoder.feed(data[offset:])
            if got != [event]:
                raise AssertionError(f"packet split at byte {offset} decoded as {got!r}")
            splits += 1
    return packets, splits


def wait(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise TimeoutError("the replay did not settle in time")


def timeline_outcomes(hub: Hub, events: Iterable[AmiEvent]) -> dict[str, Outcome]:
    """What the timeline holds for the calls of one session (its Linkedids), per outside number."""
    call_ids = {e["Linkedid"] for e in events if e.get("Linkedid")}
    by_number: dict[str, list[Any]] = {}
    for item in hub.iter_items(kind="interaction", channel="call", system="asterisk"):
        if item.source.id in call_ids:
            by_number.setdefault(item.fields["number_raw"], []).append(item)
    found = {}
    for number, items in by_number.items():
        items.sort(key=lambda i: i.id)
        last = items[-1].fields
        answered = last["status"] == "answered"
        chain = tuple(last["operators"].split(" → ")) if last.get("operators") else ()
        if not chain and answered and last.get("operator"):
            chain = (last["operator"],)
        client = hub.get_client(items[-1].client_id)
        found[number] = Outcome(
            calls=len(items),
            answered=sum(i.fields["status"] == "answered" for i in items),
            operator=last.get("operator"),
            operators=chain,
            direction=last["direction"],
            name=client.name if client is not None else None,
        )
    return found


def replay_over_tcp(all_sessions: list[tuple[str, str, list[AmiEvent], dict[str, Outcome]]]) -> dict[str, Any]:
    """Every session through one hub; return {name: outcomes read back from the timeline}."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, AMISandbox() as sandbox:
        env = {
            "HUB_TELEPHONY__AMI__HOST": "127.0.0.1",
            "HUB_TELEPHONY__AMI__PORT": str(sandbox.port),
            "HUB_TELEPHONY__AMI__USERNAME": sandbox.username,
            "HUB_TELEPHONY__AMI__SECRET": sandbox.secret.get_secret_value(),
            "HUB_TELEPHONY__AMI__RECONNECT_INITIAL": "0.05",
            "HUB_TELEPHONY__AMI__RECONNECT_MAX": "0.2",
        }
        os.environ.update(env)
        settings = load_settings(
            database_url=f"sqlite:///{tmp}/replay.db", bus_url="memory://", data_dir=Path(tmp), bus_namespace="replay"
        )
        hub = Hub(settings, PluginHost(autoload=False, extra=[("telephony", telephony_plugin)]))
        hub.start("all")
        try:
            assert sandbox.wait_for_login(), "the AMI listener did not log in"
            for index, (name, _, events, _) in enumerate(all_sessions):
                sandbox.chunk_size = 3 + index % 11
                half = len(events) // 2
                logins = sandbox.logins
                sandbox.send_events(events[:half], drop_after=half)
                wait(lambda n=logins: sandbox.logins > n)  # type: ignore[misc]
                sandbox.send_events(events[max(0, half - 20) :])
                wait(lambda: sandbox.pending() == 0)
                time.sleep(0.3)
                hub.wait_idle()
                results[name] = timeline_outcomes(hub, events)
        finally:
            hub.stop(grace=5)
    return results


def baseline_tracker(rev: str) -> type[Any]:
    """``AsteriskCallTracker`` as it was at git revision ``rev``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:plugins/telephony/asterisk.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("baseline_asterisk", loader=None)
    assert spec is not None
    module = ModuleType(spec.name)
    sys.modules[spec.name] = module  # dataclasses look their module up
    module.__package__ = "crm_hub_plugins.telephony"  # for its relative imports
    source = source.replace("from plugins.telephony.", "from crm_hub_plugins.telephony.")  # before 0.2.0's name
    exec(compile(source, f"{rev}:asterisk.py", "exec"), module.__dict__)  # our own file, at another revision
    return module.AsteriskCallTracker  # type: ignore[no-any-return]


def tracker_outcomes(tracker_class: type[Any], events: list[AmiEvent]) -> dict[str, Outcome]:
    updates = tracker_class().feed_all(events)
    return outcomes(u for u in updates if isinstance(u, CallRecord))


def same_outcome(got: Outcome | None, expected: Outcome) -> bool:
    """Calls, answered, operator, direction and name; the chain too where there was a transfer (an older
    tracker that kept no chain is not blamed for it on plain calls)."""
    if got is None:
        return False
    plain = (got.calls, got.answered, got.operator, got.direction, got.name)
    if plain != (expected.calls, expected.answered, expected.operator, expected.direction, expected.name):
        return False
    return len(expected.operators) < 2 or got.operators == expected.operators


def show(outcome: Outcome | None) -> str:
    if outcome is None:
        return "no call"
    chain = " → ".join(outcome.operators) if len(outcome.operators) > 1 else ""
    who = outcome.operator or "—"
    text = f"{outcome.calls} call, {outcome.answered} answered, {outcome.direction}, operator {who}"
    if chain:
        text += f" (chain {chain})"
    if outcome.name:
        text += f", named {outcome.name}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="also show what the tracker of this git revision gave (e.g. main)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    configure_logging(level="ERROR")
    all_sessions = sessions()
    started = time.perf_counter()
    packets, splits = decoder_splits(e for _, _, events, _ in all_sessions for e in events)
    print(
        f"decoder: {packets} packets with non-ASCII text, each split at every byte offset: {splits} splits, all equal"
    )
    old = baseline_tracker(args.baseline) if args.baseline else None
    got = replay_over_tcp(all_sessions)
    rows, bad, numbers = [], 0, 0
    for name, what, events, expected in all_sessions:
        before = tracker_outcomes(old, events) if old is not None else {}
        for number in sorted(set(expected) | set(got[name])):
            numbers += 1
            ok = expected.get(number) == got[name].get(number)
            bad += not ok
            row = [name, what, number, show(expected.get(number)), show(got[name].get(number)), "yes" if ok else "NO"]
            if old is not None:
                row.insert(4, show(before.get(number)))
            rows.append(row)
        if not expected and not got[name]:
            rows.append([name, what, "(internal only)", "no outside party", "no outside party", "yes"])
            if old is not None:
                rows[-1].insert(4, "—")
    header = ["flow", "what", "outside number", "expected", "got", "right"]
    if old is not None:
        header.insert(4, f"before ({args.baseline})")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        for row in rows:
            print("  ".join(row))
    elapsed = time.perf_counter() - started
    summary = f"{len(all_sessions)} sessions, {numbers} outside numbers: {numbers - bad} right, {bad} wrong"
    print(f"\n{summary} ({elapsed:.1f} s)")
    if old is not None:
        right_before = sum(
            same_outcome(tracker_outcomes(old, events).get(number), outcome)
            for _, _, events, expected in all_sessions
            for number, outcome in expected.items()
        )
        print(
            f"before ({args.baseline}): {right_before} of {sum(len(e) for *_, e in all_sessions)} outside numbers right"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
