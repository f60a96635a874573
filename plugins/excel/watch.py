"""The watch folder: files dropped into ``HUB_EXCEL__WATCH_DIR`` are imported once, then moved with a report.

A file is taken once its size and modification time are the same at two polls in a row (a copy in progress is
left alone), and never when its name marks it as temporary (``~$clients.xlsx``, ``.clients.xlsx``, ``*.part``).
Its content hash is recorded in ``hub.state`` when the import finishes, so the same content dropped again is
moved to ``done/`` without being imported twice. Afterwards the file goes to ``done/`` (imported, perhaps with
rejected rows) or ``failed/`` (unreadable), beside ``<name>.report.json`` and, when rows were rejected,
``<name>.rejected.xlsx``. A failure that is not the file's fault (the database is down) leaves the file where
it is and the next poll tries again; the import is resumable, so nothing is duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from hub.core.errors import BadInput

from .apply import ImportOutcome, run_import
from .settings import ExcelSettings

log = structlog.get_logger("crm_hub_plugins.excel.watch")

STATE_SCOPE = "excel.watch"
DONE = "done"
FAILED = "failed"
SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls", ".xlsb", ".ods", ".csv"})
TEMP_PREFIXES = ("~$", ".~", "~", ".")
TEMP_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".download")
MAX_ATTEMPTS = 3


def is_candidate(name: str) -> bool:
    """Whether a file name in the watch folder is one to import (not a lock or temporary file)."""
    lowered = name.lower()
    if lowered.startswith(TEMP_PREFIXES) or lowered.endswith(TEMP_SUFFIXES):
        return False
    return Path(lowered).suffix in SUFFIXES


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class WatchFolder:
    """One poll: look at the folder, import the files that stopped changing, move them out of the way."""

    hub: Any
    folder: Path
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    _attempts: dict[str, int] = field(default_factory=dict)
    last_poll: datetime | None = None
    imported: int = 0
    failed: int = 0

    def poll(self) -> None:
        if not self.folder.is_dir():
            log.warning("watch folder does not exist; create it or fix HUB_EXCEL__WATCH_DIR", folder=str(self.folder))
            return
        present: set[str] = set()
        for entry in sorted(self.folder.iterdir()):
            if not entry.is_file() or not is_candidate(entry.name):
                continue
            present.add(entry.name)
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._seen.get(entry.name) != signature:
                self._seen[entry.name] = signature  # new or still growing: look again at the next poll
                continue
            if self.take(entry):
                self._seen.pop(entry.name, None)
        for name in set(self._seen) - present:
            del self._seen[name]
        self.last_poll = datetime.now(UTC)

    def take(self, path: Path) -> bool:
        """Import one file and move it; False when it stays for another try."""
        digest = content_hash(path)
        previous = self.hub.state.get(STATE_SCOPE, digest)
        if previous and previous.get("status") == "done":
            report = {"status": "already imported", "first import": previous, "sha256": digest}
            self._finish(path, DONE, report)
            log.info("excel file already imported; moved aside", file=path.name, first=previous.get("file"))
            return True
        folder = self.folder / DONE
        final = _free_name(folder, path.name)
        started = datetime.now(UTC).isoformat()
        self.hub.state.put(STATE_SCOPE, digest, {"status": "importing", "file": path.name, "started_at": started})
        try:
            folder.mkdir(exist_ok=True)
            outcome = run_import(self.hub, path, rejected_path=folder / f"{Path(final).stem}.rejected.xlsx")
        except BadInput as exc:
            self.hub.state.delete(STATE_SCOPE, digest)
            self.failed += 1
            log.warning("excel file could not be imported; moved to failed/", file=path.name, error=str(exc))
            self._finish(path, FAILED, {"status": "failed", "error": str(exc), "sha256": digest})
            return True
        except Exception as exc:
            attempts = self._attempts[path.name] = self._attempts.get(path.name, 0) + 1
            log.error(
                "excel import interrupted; will resume at the next poll",
                file=path.name,
                attempt=attempts,
                error=str(exc),
                error_type=type(exc).__name__,
            )
            if attempts < MAX_ATTEMPTS:
                return False
            self.failed += 1
            report = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "attempts": attempts}
            self._finish(path, FAILED, {**report, "sha256": digest})
            return True
        self._attempts.pop(path.name, None)
        summary = outcome.summary()
        self.hub.state.put(
            STATE_SCOPE,
            digest,
            {"status": "done", "file": path.name, "imported_at": datetime.now(UTC).isoformat(), "summary": summary},
        )
        self.imported += 1
        self._finish(path, DONE, {"status": "imported", "sha256": digest, **_report(outcome)}, name=final)
        return True

    def _finish(self, path: Path, where: str, report: dict[str, Any], *, name: str | None = None) -> None:
        folder = self.folder / where
        folder.mkdir(exist_ok=True)
        final = name or _free_name(folder, path.name)
        shutil.move(str(path), folder / final)
        report = {"file": path.name, "moved to": f"{where}/{final}", **report}
        target = folder / f"{Path(final).stem}.report.json"
        partial = target.with_name(target.name + ".part")
        partial.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        os.replace(partial, target)

    def health(self) -> dict[str, Any]:
        writable = self.folder.is_dir() and os.access(self.folder, os.W_OK)
        return {
            "status": "ok" if writable else "degraded",
            "watch_dir": str(self.folder) if writable else f"{self.folder} (missing or not writable)",
            "imported": self.imported,
            "failed": self.failed,
            "last_poll": self.last_poll.isoformat() if self.last_poll else None,
        }


def _report(outcome: ImportOutcome) -> dict[str, Any]:
    report = outcome.report()
    if outcome.rejected_file is not None:
        report["summary"]["rejected file"] = outcome.rejected_file.name
    return report


def _free_name(folder: Path, name: str) -> str:
    """``name`` or, when ``folder`` already holds it (the same file name dropped again), ``stem-<time>.ext``."""
    candidate = name
    path = Path(name)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    counter = 0
    while (folder / candidate).exists() or (folder / f"{Path(candidate).stem}.report.json").exists():
        counter += 1
        candidate = f"{path.stem}-{stamp}{'-' + str(counter) if counter > 1 else ''}{path.suffix}"
    return candidate


_watchers: dict[int, WatchFolder] = {}


def watcher(hub: Any) -> WatchFolder | None:
    """The hub's watch folder, or None when ``HUB_EXCEL__WATCH_DIR`` is not set."""
    settings: ExcelSettings = hub.plugin_settings("excel")
    if settings.watch_dir is None:
        return None
    found = _watchers.get(id(hub))
    if found is None or found.hub is not hub:
        found = _watchers[id(hub)] = WatchFolder(hub, Path(settings.watch_dir).expanduser())
    return found


def forget(hub: Any) -> None:
    _watchers.pop(id(hub), None)
