"""P3: Excel import of 100,000 messy rows, against a bare python-calamine read of the same file.

Run: ``python bench/excel_import.py [--rows N] [--keep FILE] [--profile]``. Prints rows/s of both and their ratio.
The figure covers reading, mapping, normalising and de-duplicating (plan_import); applying the plan to the
database is measured by the core's own benchmark.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the generated file here and keep it")
    parser.add_argument("--profile", action="store_true", help="print the top functions of plan_import")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or Path(folder) / "messy.xlsx"
        started = time.perf_counter()
        write_messy_xlsx(path, args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s ({path.stat().st_size:,} bytes)")
        started = time.perf_counter()
        read = bare_read(path)
        bare = time.perf_counter() - started
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        plan = plan_import(path)
        if profiler:
            profiler.disable()
        full = time.perf_counter() - started
    print(f"bare calamine read: {read:,} rows in {bare:.2f} s = {read / bare:,.0f} rows/s")
    print(f"plan_import:        {plan.rows_read:,} rows in {full:.2f} s = {plan.rows_read / full:,.0f} rows/s")
    print(f"ratio (plan_import time / bare read time): {full / bare:.1f}x; target >= 10,000 rows/s")
    print({k: v for k, v in plan.summary().items() if isinstance(v, int) and v})
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
