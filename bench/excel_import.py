"""P3 and P8: Excel import of a messy 100,000-row client base with a known truth into a fresh SQLite hub.

Run: ``python bench/excel_import.py [--rows N] [--seed S] [--keep FILE] [--profile] [--no-reimport] [--code DIR]``.

The base comes from the seeded generator of the tests (``tests/plugins/excel/messy_base.py``): true people and
companies written as a real list looks (ФИО in capitals, initials, typos, swapped order; phones as numbers, with
``8``/``+7``, NBSP, zero-width spaces, extensions and several to a cell; padded and garbage e-mails; INNs that lost
their leading zero; company names with «», quotes and legal forms spelled out; blank and "Итого" rows).

P3 prints rows/s of a bare python-calamine read, of planning alone (read, map, normalise, de-duplicate) and of the
full import (plan + ``hub.ingest_many`` in chunks of 500, one transaction each), with the ratio of each to the bare
read. P8 prints people split and wrongly merged, companies with an INN exact, and pairwise precision and recall of
people and companies against the truth. ``--code DIR`` runs another checkout's ``hub`` and ``plugins`` (for
instance the commit before a change) on the same generated file, for a before/after comparison in one sitting.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

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


def bare_read(path: Path) -> int:
    import python_calamine

    count = 0
    with python_calamine.CalamineWorkbook.from_path(path) as book:
        for _row in book.get_sheet_by_index(0).iter_rows():
            count += 1
    return count


def excel_package() -> str:
    # the installed name, or the folder of a checkout given with --code (releases before 0.2.0 installed the
    # built-in plugins as `plugins`; later ones import relatively inside it, so the folder name works for both)
    return "plugins.excel" if CODE is not None else "crm_hub_plugins.excel"


CODE: Path | None = None


def fresh_hub(folder: Path) -> Any:
    excel_plugin = importlib.import_module(excel_package() + ".plugin")
    from hub.core.hub import Hub
    from hub.core.plugins import PluginHost
    from hub.core.settings import load_settings

    settings = load_settings(database_url=f"sqlite:///{folder / 'hub.db'}", bus_url="memory://", data_dir=folder)
    hub = Hub(settings, PluginHost(autoload=False, extra=[("excel", excel_plugin)]))
    hub.migrate()
    return hub


def count(hub: Any, table: object) -> int:
    from sqlalchemy import func, select

    with hub.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def print_p8(result: Any, rows: int) -> None:
    print(f"\nP8 identity against the truth ({rows:,} rows):")
    print(
        f"  people:    {result.persons_true:,} true, {result.persons_hub:,} in the hub; "
        f"split {result.persons_split}, wrongly merged {result.persons_merged_wrongly}; "
        f"pairwise precision {result.person_precision:.4f}, recall {result.person_recall:.4f}"
    )
    print(
        f"  companies: {result.companies_true:,} true ({result.companies_with_inn:,} with an INN), "
        f"{result.companies_hub:,} in the hub; with an INN exact {result.inn_companies_exact:,}"
        f"/{result.companies_with_inn:,}; pairwise precision {result.company_precision:.4f}, "
        f"recall {result.company_recall:.4f}"
    )
    print(
        f"  merge candidates: {result.merge_candidates:,} ({result.true_candidates:,} of them right); "
        f"clients standing for nobody: {result.junk_clients}"
    )
    target = (
        result.persons_split == 0
        and result.persons_merged_wrongly == 0
        and result.inn_companies_exact == result.companies_with_inn
    )
    print(f"  target (0 split, 0 wrongly merged, companies with an INN exact): {'met' if target else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="write the generated file here and keep it")
    parser.add_argument("--profile", action="store_true", help="split the full import's time by library and module")
    parser.add_argument("--no-reimport", action="store_true", help="skip the re-import of the same file")
    parser.add_argument("--code", type=Path, help="import hub and plugins from this checkout instead")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests" / "plugins" / "excel"))  # the generator lives beside its tests
    sys.path.insert(0, str((args.code or REPO).resolve()))

    from messy_base import generate, score

    global CODE
    CODE = args.code
    excel = importlib.import_module(excel_package())
    apply = importlib.import_module(excel_package() + ".apply")
    ImportOutcome, apply_plan, run_import = apply.ImportOutcome, apply.apply_plan, apply.run_import
    plan_import = importlib.import_module(excel_package() + ".importer").plan_import
    from hub.core import schema as s
    from hub.core.logging import configure_logging

    configure_logging("warning", "console")
    print(f"code under test: {Path(excel.__file__).parents[2]}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = args.keep or folder / "messy.xlsx"
        started = time.perf_counter()
        base = generate(args.rows, args.seed)
        base.write_xlsx(path)
        print(
            f"generated {len(base.rows):,} rows ({len({r.person for r in base.person_rows}):,} true people) "
            f"in {time.perf_counter() - started:.1f} s ({path.stat().st_size:,} bytes)"
        )

        started = time.perf_counter()
        read = bare_read(path)
        bare = time.perf_counter() - started

        started = time.perf_counter()
        plan = plan_import(path)
        planned = time.perf_counter() - started

        hub = fresh_hub(folder)
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = run_import(hub, path, rejected_path=folder / "rejected.xlsx")
        full, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if profiler:
            profiler.disable()
        clients, points, outbox = count(hub, s.clients), count(hub, s.contact_points), count(hub, s.outbox)
        result = score(base, hub)

        again: ImportOutcome | None = None
        reapplied = 0.0
        if not args.no_reimport:
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
        f"{plan.rows_read / planned:>9,.0f} rows/s  ({planned / bare:.1f}x the bare read)"
    )
    print(
        f"P3 full import:       {rows:>9,} rows in {full:6.2f} s = {rows / full:>9,.0f} rows/s"
        f"  ({full / bare:.1f}x the bare read); target >= 10,000 rows/s"
    )
    print(f"  CPU time {cpu:.2f} s = {rows / cpu:,.0f} rows/s (wall time suffers on a busy machine)")
    print(
        f"  of which applying {observations:,} observations through hub.ingest_many: {full - planned:.2f} s "
        f"(about {observations / max(full - planned, 1e-9):,.0f} observations/s; plan measured separately above)"
    )
    if again is not None:
        print(
            f"re-import of the same file (plan reused): {observations:,} observations in {reapplied:.2f} s, "
            f"created {again.plan.created}, updated {again.plan.updated}, unchanged {again.plan.unchanged:,}"
        )
    print(f"database: {clients:,} clients, {points:,} contact points, {outbox:,} outbox events")
    summary = outcome.summary()
    print({k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool) and v})
    print_p8(result, len(base.rows))
    if profiler:
        stats = pstats.Stats(profiler)
        total = sum(split_profile(stats).values())
        print(f"\nwhere the full import's time goes (self time under the profiler, {total:.1f} s total):")
        for name, seconds in sorted(split_profile(stats).items(), key=lambda kv: -kv[1]):
            print(f"  {name:<28} {seconds:6.2f} s  {100 * seconds / total:5.1f}%")
        stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
