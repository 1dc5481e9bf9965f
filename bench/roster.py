"""Roster import and name search at a unit's scale, one run (never a timed unit test).

    .venv/bin/python bench/roster.py [--people 5000] [--queries 300]

A synthetic staff list (``scanstation_tools.synth_people``: Devanagari and English names, codes, dates) is
written as CSV and read with :func:`scanstation.roster.reader.read_roster`; the search index is built and
queried with English names, English names with a letter dropped and Devanagari names.  Printed: read
time, index build time, search p50/p95 per query, and how often the person's Hindi name is among the
first ten results.  Target (the operator's screen searches as they type, over one serialised connection):
search p95 <= 50 ms for 5,000 people.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanstation.roster.reader import read_roster
from scanstation.roster.search import RosterIndex
from scanstation.store.roster import RosterPerson
from scanstation_tools.synth_people import SyntheticEmployee, synthetic_employee


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=5000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    staff: dict[str, SyntheticEmployee] = {}
    seed = 0
    while len(staff) < args.people:
        e = synthetic_employee(seed)
        seed += 1
        staff.setdefault(e.employee_code, e)
    people = list(staff.values())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "staff.csv"
        lines = ["Employee Code,Name (Hindi),Name (English),Rank,Unit,DOB,DOJ"]
        lines += [f"{e.employee_code},{e.name_hi},{e.name},{e.rank},{e.unit},{e.date_of_birth:%d-%m-%Y},"
                  f"{e.date_of_joining:%d-%m-%Y}" for e in people]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        t = time.perf_counter()
        roster = read_roster(path)
        read_s = time.perf_counter() - t
    t = time.perf_counter()
    index = RosterIndex([RosterPerson(r.employee_code, r.name_hi, "", r.rank, r.unit, None, None, True)
                         for r in roster.rows])
    build_s = time.perf_counter() - t
    times, found = [], 0
    sample = people[: args.queries // 3]
    for e in sample:
        for q in (e.name, e.name[:3] + e.name[4:], e.name_hi):
            t = time.perf_counter()
            hits = index.search(q, limit=10)
            times.append(time.perf_counter() - t)
            found += any(m.person.name_hi == e.name_hi for m in hits)
    times.sort()
    p95 = times[int(len(times) * 0.95)] * 1000
    print(f"{len(people)} people: read {read_s:.2f} s, index {build_s:.2f} s; search p50 "
          f"{statistics.median(times) * 1000:.1f} ms, p95 {p95:.1f} ms over {len(times)} queries; "
          f"found {found}/{len(times)}; target p95 <= 50 ms: {'PASS' if p95 <= 50 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
