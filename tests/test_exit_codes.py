"""One exit-code table: generated from the exception classes, and the README's table says the same."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import batchformat
import drivers
import scanstation
import scanstation_tools
from batchformat.errors import FormatError
from scanstation.errors import EXIT_CODES, ScanStationError, exit_code_table

REPO = Path(__file__).resolve().parents[1]
_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(.*?)\s*\|\s*$")


def readme_exit_codes() -> dict[int, str]:
    """The rows of the README's ``### Exit codes`` table: code -> meaning."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("### Exit codes")
    rows: dict[int, str] = {}
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if in_table:
                break  # the table has ended
            continue
        in_table = True
        m = _ROW.match(line)
        if m:
            code = int(m.group(1))
            assert code not in rows, f"README lists exit code {code} twice"
            rows[code] = m.group(2).replace("\\|", "|")
    return rows


NOT_PYTHON_MODULES = {"drivers._deferred_cancel"}


def every_error_class() -> list[type[ScanStationError | FormatError]]:
    """Every class below the two roots, after importing every module that could define one."""
    for package in (drivers, batchformat, scanstation, scanstation_tools):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            # drivers/_deferred_cancel.c is built like an extension module but is a plain shared object, only
            # ever LD_PRELOADed into the SANE worker: it has no PyInit and defines nothing Python.
            if not info.name.endswith(".__main__") and info.name not in NOT_PYTHON_MODULES:
                importlib.import_module(info.name)
    found: list[type[ScanStationError | FormatError]] = []
    todo: list[type[ScanStationError | FormatError]] = [ScanStationError, FormatError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_the_readme_table_is_the_generated_table() -> None:
    table = {code: summary for code, (summary, _cls) in exit_code_table().items()}
    assert readme_exit_codes() == table
    assert table == EXIT_CODES


def test_classes_sharing_an_exit_code_share_its_summary() -> None:
    summaries: dict[int, set[str]] = defaultdict(set)
    carriers: dict[int, set[str]] = defaultdict(set)
    for cls in every_error_class():
        summaries[cls.exit_code].add(cls.summary)
        carriers[cls.exit_code].add(cls.__qualname__)
    for code, texts in summaries.items():
        assert len(texts) == 1, f"exit code {code} has several summaries {sorted(texts)} ({sorted(carriers[code])})"
    table = exit_code_table()
    assert {code: texts.pop() for code, texts in summaries.items()} == {
        code: summary for code, (summary, cls) in table.items() if cls
    }
    # 0 and 2 are the only codes no exception carries, and no exception claims them.
    assert set(table) - set(summaries) == {0, 2}


def test_the_exit_codes_command_prints_every_code() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "scanstation.cli", "exit-codes"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60, check=True)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    # health's range, in its place among the others: 64 plus the failing checks' bits, each named
    ranges = [line for line in lines if "-" in line.split()[0]]
    assert len(ranges) == 1 and ranges[0].startswith("64-95  scanstation health: 64 plus"), ranges
    assert all(f"{name} +{bit}" in ranges[0] for name, bit in
               {"service": 1, "signin": 2, "guard": 4, "disk": 8, "upload": 16}.items())
    starts = [int(line.split()[0].split("-")[0]) for line in lines]
    assert starts == sorted(starts)
    printed = {int(line.split()[0]): line.split(None, 1)[1] for line in lines if line not in ranges}
    assert set(printed) == set(EXIT_CODES)
    for code, summary in EXIT_CODES.items():
        assert printed[code].startswith(summary), (code, printed[code])
