"""How pytest-xdist shares the suite between its workers (``pytest -n 2``, installer/test.sh).

xdist's default (``--dist load``) hands out single tests, so the tests of one file end up on both workers and a
fixture the file shares (``scope="module"`` or ``"class"``: a station with sealed batches, a built package, a
production install) is made twice, once in each worker: minutes of the suite.  Here, the tests of a file that
defines such a fixture go to one worker together (these files first, the most tests first, as xdist's
``loadscope`` orders them); every other test is still handed out on its own, which keeps both workers busy to
the end.  An explicit ``--dist`` other than ``load`` is left as asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

# A fixture decorator with a scope wider than one test (package and session ones are made once per worker anyway,
# but their files are kept together too, so that they are made once).
_SHARED_FIXTURE = re.compile(r"""@pytest\.fixture\([^)]*\bscope\s*=\s*["'](?:module|class|package|session)["']""")


@cache
def shares_fixtures(path: Path) -> bool:
    """Whether the test file at ``path`` defines a fixture its tests share."""
    try:
        return bool(_SHARED_FIXTURE.search(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return False


def work_unit(rootpath: Path, nodeid: str) -> str:
    """The unit xdist hands to one worker: the whole file for a file that shares fixtures, else the test."""
    file = nodeid.split("::", 1)[0]
    return file if shares_fixtures(rootpath / file) else nodeid


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: without xdist, nothing to do
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist", "no") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileOrTestScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(config.rootpath, nodeid)

    return FileOrTestScheduling(config, log)


@pytest.fixture
def cheap_argon2() -> Iterator[None]:
    """The test stations' cheap argon2id cost in this process for one test (tests/stationkit.py:
    cheap_argon2_here); for the files that drive a station's service in-process (``pytestmark``)."""
    from .stationkit import cheap_argon2_here

    with cheap_argon2_here():
        yield
