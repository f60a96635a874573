"""P3: Excel import of 100,000 messy rows into a fresh SQLite hub, against a bare python-calamine read of the file.

Run: ``python bench/excel_import.py [--rows N] [--keep FILE] [--profile]``. Prints rows/s of the bare read, of
planning alone (read, map, normalise, de-duplicate) and of the full import (plan + ``hub.ingest_many`` in chunks of
500, one transaction each), and the ratio of each to the bare read. ``--profile`` splits the full import's CPU time
between the plugin, the core, SQLAlchemy and the SQLite driver, pydantic, and the readers.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import tempfile
import time
from pathlib import Path

import python_calamine
from openpyxl import Workbook
from sqlalchemy import func, select

from hub.core import schema as s
from hub.core.hub import Hub
from hub.core.logging import configure_logging
from hub.core.plugins import PluginHost
from hub.core.settings import load_settings
from plugins.excel import plugin as excel_plugin
from plugins.excel.apply import ImportOutcome, apply_plan, run_import
from plugins.excel.importer import plan_import

LAST = ["Иванов", "Петров", "Сидоров", "Кузнецов", "Смирнов", "Попов", "Васильев", "Соколов", "Михайлов", "Новиков"]
FIRST = ["Иван", "Пётр", "Сергей", "Анна", "Мария", "Ольга", "Алексей", "Дмитрий", "Елена", "Наталья"]
MIDDLE = ["Иванович", "Петрович", "Сергеевна", "Алексеевна", "Дмитриевич", ""]
COMPANIES = [("ООО Ромашка", "7707083893"), ("АО Вектор", "0274062111"), ("ИП Сидоров", ""), ("", "")]


def messy_phone(rng: random.Random, number: int) -> object:
    national = f"9{number:09d}"
    shape = rng.randrange(8)
    if shape == 0:
        return float("7" + national)  # a phone stored as a number
    if shape == 1:
        return f"8 ({national[:3]}) {national[3:6]}-{national[6:8]}-{national[8:]}"
    if shape == 2:
        return f"+7 {national[:3]} {national[3:6]} {national[6:8]} {national[8:]}"
    if shape == 3:
        return f"+7{national}, 8 495 {rng.randrange(100, 999)}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}"
    if shape == 4:
        return f"{rng.randrange(100, 999)}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}"  # no area code
    return f"7{national}"


def write_messy_xlsx(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Клиенты")
    sheet.append(["Выгрузка клиентов"])
    sheet.append([])
    sheet.append(["ФИО", "Тел.", "E-mail", "Организация", "ИНН", "Должность", "Дата", "Комментарий", "Источник"])
    for index in range(rows):
        number = index if rng.random() > 0.1 else rng.randrange(max(index, 1))  # about 10% repeat an earlier one
        company, inn = COMPANIES[index % len(COMPANIES)]
        name = f"{LAST[number % 10]} {FIRST[number // 10 % 10]} {MIDDLE[number % 6]}".strip()
        email = f"User{number}@Example{number % 50}.RU" if rng.random() < 0.7 else ""
        if index % 97 == 0:
            sheet.append([])
            continue
        sheet.append(
            [
                name if rng.random() > 0.05 else "",
                messy_phone(rng, number),
                email,
                company,
                inn,
                "менеджер" if index % 3 == 0 else "",
                45000 + index % 900,
                "перезвонить" if index % 5 == 0 else "",
                "выставка",
            ]
        )
    book.save(path)


def bare_read(path: Path) -> int:
    count = 0
    with python_calamine.CalamineWorkbook.from_path(path) as book:
        for _row in book.get_sheet_by_index(0).iter_rows():
            count += 1
    return count


def fresh_hub(folder: Path) -> Hub:
    settings = load_settings(database_url=f"sqlite:///{folder / 'hub.db'}", bus_url="memory://", data_dir=folder)
    hub = Hub(settings, PluginHost(autoload=False, extra=[("excel", excel_plugin)]))
    hub.migrate()
    return hub


# where the CPU time of the full import goes, by the file that owns each function (self time)
AREAS = (
    ("plugin: plugins/excel", ("plugins/excel",)),
    ("core: hub/core", ("hub/core",)),
    ("SQLAlchemy", ("sqlalchemy",)),
    ("sqlite3 driver", ("sqlite3", "{method 'execute", "{method 'executemany", "{method 'commit", "{method 'fetch")),
    ("pydantic", ("pydantic",)),
    ("calamine (read)", ("python_calamine", "calamine")),
    ("phonenumbers / email", ("phonenumbers", "email_validator")),
    ("openpyxl (rejected file)", ("openpyxl",)),
)


def split_profile(stats: pstats.Stats) -> dict[str, float]:
    areas: dict[str, float] = {name: 0.0 for name, _ in AREAS}
    areas["other (stdlib, builtins)"] = 0.0
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        where = f"{filename} {function}"
        for name, needles in AREAS:
            if any(needle in where for needle in needles):
                areas[name] += own
                break
        else:
            areas["other (stdlib, builtins)"] += own
    return areas


def count(hub: Hub, table: object) -> int:
    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the generated file here and keep it")
    parser.add_argument("--profile", action="store_true", help="split the full import's time by library and module")
    args = parser.parse_args()
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = args.keep or folder / "messy.xlsx"
        started = time.perf_counter()
        write_messy_xlsx(path, args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s ({path.stat().st_size:,} bytes)")

        started = time.perf_counter()
        read = bare_read(path)
        bare = time.perf_counter() - started

        started = time.perf_counter()
        plan = plan_import(path)
        planned = time.perf_counter() - started

        hub = fresh_hub(folder)
        profiler = cProfile.Profile() if args.profile else None
        marks: dict[str, float] = {}

        def applying(_total: int, _n: int) -> None:
            marks.setdefault("applying", time.perf_counter())

        if profiler:
            profiler.enable()
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = run_import(hub, path, rejected_path=folder / "rejected.xlsx", applying=applying)
        full, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if profiler:
            profiler.disable()
        clients, points, outbox = count(hub, s.clients), count(hub, s.contact_points), count(hub, s.outbox)

        again = ImportOutcome(plan=plan_import(path))
        started = time.perf_counter()
        apply_plan(hub, again)
        reapplied = time.perf_counter() - started
        hub.store.dispose()

    rows = outcome.plan.rows_read
    observations = len(outcome.plan.observations)
    print(f"bare calamine read:   {read:>9,} rows in {bare:6.2f} s = {read / bare:>9,.0f} rows/s")
    print(
        f"plan alone:           {plan.rows_read:>9,} rows in {planned:6.2f} s = "
        f"{plan.rows_read / planned:>9,.0f} rows/s"
        f"  ({planned / bare:.1f}x the bare read)"
    )
    print(
        f"full import:          {rows:>9,} rows in {full:6.2f} s = {rows / full:>9,.0f} rows/s"
        f"  ({full / bare:.1f}x the bare read); target >= 10,000 rows/s"
    )
    print(f"  CPU time {cpu:.2f} s = {rows / cpu:,.0f} rows/s (wall time suffers on a busy machine)")
    print(
        f"  of which applying {observations:,} observations through hub.ingest_many: {full - planned:.2f} s "
        f"(about {observations / max(full - planned, 1e-9):,.0f} observations/s; plan measured separately above)"
    )
    print(
        f"re-import of the same file (plan reused): {observations:,} observations in {reapplied:.2f} s, "
        f"created {again.plan.created}, updated {again.plan.updated}, unchanged {again.plan.unchanged:,}"
    )
    print(f"database: {clients:,} clients, {points:,} contact points, {outbox:,} outbox events")
    summary = outcome.summary()
    print({k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool) and v})
    if profiler:
        stats = pstats.Stats(profiler)
        total = sum(split_profile(stats).values())
        print(f"\nwhere the full import's time goes (self time under the profiler, {total:.1f} s total):")
        for name, seconds in sorted(split_profile(stats).items(), key=lambda kv: -kv[1]):
            print(f"  {name:<28} {seconds:6.2f} s  {100 * seconds / total:5.1f}%")
        stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
