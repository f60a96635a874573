"""The watch folder: a dropped file is imported once and moved to done/ or failed/ beside its report."""

from __future__ import annotations

import json
from pathlib import Path

from excel_hub import excel_hub
from excel_workbooks import write_xlsx

from crm_hub_plugins.excel.watch import watcher
from tests.conftest import wait_for

HEADER = ["ФИО", "Телефон", "Почта"]
ROWS: list[list[object]] = [
    ["Иванов Иван", "+79161234567", "ivan@mail.ru"],
    ["Петров Пётр", "8 916 222-33-44", ""],
    ["", "12-34", ""],
]


def report(folder: Path, stem: str) -> dict:
    return json.loads((folder / f"{stem}.report.json").read_text(encoding="utf-8"))


def test_a_dropped_file_is_imported_once_and_moved_to_done_with_its_report(
    backend, monkeypatch, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = excel_hub(backend, monkeypatch, watch_dir=str(inbox), poll_interval="0.1")
    env.hub.start("all")
    write_xlsx(inbox / "клиенты.xlsx", [HEADER, *ROWS])
    done = inbox / "done"
    wait_for(lambda: (done / "клиенты.report.json").exists())
    assert (done / "клиенты.xlsx").exists() and not (inbox / "клиенты.xlsx").exists()
    summary = report(done, "клиенты")["summary"]
    assert (summary["rows read"], summary["created"], summary["rejected"]) == (3, 2, 1)
    assert summary["rejected file"] == "клиенты.rejected.xlsx" and (done / "клиенты.rejected.xlsx").exists()
    assert env.hub.find_clients(phone="+79162223344")[0].name == "Петров Пётр"
    assert env.hub.health()["plugins"]["excel"]["imported"] == 1

    events = env.events
    write_xlsx(inbox / "клиенты.xlsx", [HEADER, *ROWS])  # the same list dropped again
    wait_for(lambda: len(list(done.glob("клиенты-*.report.json"))) == 1)
    (again,) = done.glob("клиенты-*.report.json")
    assert json.loads(again.read_text(encoding="utf-8"))["status"] in ("already imported", "imported")
    assert env.events == events


def test_the_same_content_is_imported_once_even_under_another_name(embedded, monkeypatch, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = excel_hub(embedded, monkeypatch, watch_dir=str(inbox))
    folder = watcher(env.hub)
    assert folder is not None
    source = write_xlsx(tmp_path / "list.xlsx", [HEADER, *ROWS])
    (inbox / "a.xlsx").write_bytes(source.read_bytes())
    folder.poll()
    folder.poll()
    assert report(inbox / "done", "a")["status"] == "imported"
    (inbox / "b.xlsx").write_bytes(source.read_bytes())
    folder.poll()
    folder.poll()
    second = report(inbox / "done", "b")
    assert second["status"] == "already imported" and second["first import"]["file"] == "a.xlsx"
    assert folder.imported == 1


def test_a_corrupt_file_goes_to_failed_with_the_reason(embedded, monkeypatch, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = excel_hub(embedded, monkeypatch, watch_dir=str(inbox))
    folder = watcher(env.hub)
    assert folder is not None
    (inbox / "broken.xlsx").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    folder.poll()
    folder.poll()
    failed = inbox / "failed"
    assert (failed / "broken.xlsx").exists() and not (inbox / "broken.xlsx").exists()
    result = report(failed, "broken")
    assert result["status"] == "failed" and "damaged or truncated" in result["error"]
    assert env.clients == 0
    assert env.hub.health()["plugins"]["excel"]["failed"] == 1


def test_a_file_still_being_written_or_a_temporary_one_is_left_alone(embedded, monkeypatch, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = excel_hub(embedded, monkeypatch, watch_dir=str(inbox))
    folder = watcher(env.hub)
    assert folder is not None
    growing = inbox / "growing.csv"
    growing.write_text("ФИО;Телефон\r\nИванов Иван;+79161234567\r\n", encoding="utf-8")
    (inbox / "~$growing.xlsx").write_bytes(b"owner lock file")
    (inbox / "upload.xlsx.part").write_bytes(b"half")
    folder.poll()
    with growing.open("a", encoding="utf-8") as handle:
        handle.write("Петров Пётр;+79162223344\r\n")  # the copy is still going on
    folder.poll()
    assert growing.exists() and env.clients == 0
    folder.poll()  # unchanged since the last look: now it is taken
    assert not growing.exists() and env.clients == 2
    assert (inbox / "~$growing.xlsx").exists() and (inbox / "upload.xlsx.part").exists()
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["growing.csv", "growing.report.json"]
