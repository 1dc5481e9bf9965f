"""Cheap argon2id in the processes of the test stations (tests/stationkit.py puts this directory first on their
``PYTHONPATH``, so Python's ``site`` imports this module at every start of such a process).

A station command signs its person in (one argon2id verification) and, in its own process, opens their key slot
(a second verification and one key derivation): at the station's real cost (64 MiB, t = 3) about half a second of
CPU per command, and the suite runs well over a thousand commands.  Here the station's cost object
(:data:`scanstation.people.passwords.DEFAULT_PARAMS`, the default of every hash, key wrap and recovery slot) is
set to :data:`CHEAP` when that module is first imported: the same code, the same argon2id, cheap parameters.

Nothing else changes, and nothing is imported here until a process imports that module itself (the checks of
which modules a command loads, tests/test_cli_imports.py, see the same ``sys.modules``).  The real cost stays
checked: tests/test_people.py and tests/test_key_slots.py in the test process itself (which this module never
enters), and tests/test_cli_init.py reads it from the people.db of a station founded by ``scanstation init``
without this directory.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

TARGET = "scanstation.people.passwords"
CHEAP = {"memory_kib": 1024, "time_cost": 1, "parallelism": 1}  # as tests/peoplekit.py's CHEAP


def _cheapen(module: ModuleType) -> None:
    params = module.DEFAULT_PARAMS
    for name, value in CHEAP.items():
        object.__setattr__(params, name, value)  # a frozen dataclass: every default bound to it follows


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader  # this module's own loader (its __loader__ stays the real one)
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _cheapen(module)

        loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
