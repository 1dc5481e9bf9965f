"""The supervisor's and the unit head's screenshots (issue 14): supervisor.png, supervisor-keys.png, dashboard.png.

Used by docs/screens/regenerate.py: :func:`prepare` adds to its throw-away station (before ``scanstation
serve`` starts) a roster of synthetic people, the unit's periods, a batch verified by ``sup2`` and a batch
closed for verification (three ACR files: one with a blank page, one "not in roster"), all imported by
``sup``; :func:`screens` then drives the kiosk: ``sup2`` verifies page by page (supervisor.png, and the key
help over it, supervisor-keys.png), the unit head opens the progress dashboard (dashboard.png).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# appended to the station configuration: the unit's periods (the dashboard's expected files)
CONFIG = '\n[roster]\nperiods = ["2018-19", "2019-20", "2020-21"]\n'
# more synthetic people, appended to regenerate.py's roster (EMP-1001, EMP-1002)
ROSTER_MORE = ("EMP-1003,सुनीता यादव,Sunita Yadav,Head Constable,Test Unit\n"
               "EMP-1004,मोहन लाल,Mohan Lal,Constable,Test Unit\n"
               "EMP-1005,कविता सिंह,Kavita Singh,Constable,Test Unit\n"
               "EMP-1006,अजय कुमार,Ajay Kumar,Sub-Inspector,Test Unit\n")
QUEUE_BATCH = "ACR-2026-011"


def _pages(tmp: Path, seed: int, n: int, *, blank: bool = False) -> list[str]:
    from PIL import Image

    from scanstation_tools.synth import PageSpec, render_acr_page

    files = []
    for i in range(n):
        f = tmp / f"sup-{seed}-{i}.png"
        render_acr_page(PageSpec(seed=seed, page_no=i + 1, dpi=150, noise=0.05)).image.save(f, dpi=(150, 150))
        files.append(str(f))
    if blank:
        f = tmp / f"sup-{seed}-blank.png"
        Image.new("L", (1240, 1754), 255).save(f, dpi=(150, 150))
        files.append(str(f))
    return files


def prepare(st: Any, tmp: Path) -> None:
    """Batches for the screens, imported by ``sup`` (so that ``sup2`` may verify them)."""
    st.run("import", "--batch", "ACR-2026-010", "--employee", "EMP-1001", "--period", "2018-19",
           *_pages(tmp, 21, 2), check=True)
    st.run("import", "--batch", "ACR-2026-010", "--employee", "EMP-1002", "--period", "2018-19",
           *_pages(tmp, 22, 2), check=True)
    st.verify("ACR-2026-010")
    st.run("import", "--batch", QUEUE_BATCH, "--employee", "EMP-1001", "--period", "2019-20",
           *_pages(tmp, 31, 3), check=True)
    st.run("import", "--batch", QUEUE_BATCH, "--employee", "EMP-1003", "--period", "2019-20",
           *_pages(tmp, 32, 1, blank=True), check=True)
    st.run("import", "--batch", QUEUE_BATCH, "--employee", "EMP-2090", "--period", "2020-21", "--not-in-roster",
           "transferred in last month, not yet in the HR export", "--name", "दिनेश चौहान",
           *_pages(tmp, 33, 1), check=True)
    st.run("batch", "close", "--batch", QUEUE_BATCH, check=True)


def screens(window: Any, sign_in: Callable[[str], None], until: Callable[[Callable[[], bool], str], None],
            shot: Callable[[str], None]) -> None:
    from ui.qt import QApplication

    app = QApplication.instance()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if app is not None:
                app.processEvents()
            time.sleep(0.02)

    sign_in("sup2")
    until(lambda: window.stack.currentWidget() is window.work, "the supervisor's work screen")
    window.tabs.setCurrentWidget(window.verify)
    screen = window.verify
    until(lambda: any(r.get("name") == QUEUE_BATCH for r in getattr(screen, "queue_rows", [])), "the queue")
    screen.open_row(next(i for i, r in enumerate(screen.queue_rows) if r["name"] == QUEUE_BATCH))

    def full_shown() -> bool:
        page = screen.view.page
        return page is not None and page.key[0] == "full" and page.key[2] == screen.seq

    until(lambda: bool(screen.detail) and full_shown(), "the first page")
    for _ in range(2):  # OK and next, twice
        screen.act("ok_next")
        until(full_shown, "the next page")
    flagged = next(int(p["seq"]) for p in screen.detail["pages"]
                   if p["document_id"] == screen.detail["documents"][-1]["id"])
    screen.go_to(flagged)  # the file not in the roster: its flag waits for a verdict
    until(full_shown, "the flagged file's page")
    pump(2.5)  # the detail's reload and the thumbnails of the pages not yet visited
    shot("supervisor.png")
    screen.act("help")
    shot("supervisor-keys.png")
    screen.act("help")
    window.sign_out_button.click()

    sign_in("head")
    until(lambda: window.stack.currentWidget() is window.work, "the unit head's work screen")
    window.tabs.setCurrentWidget(window.dashboard)
    until(lambda: bool(window.dashboard.data), "the progress numbers")
    shot("dashboard.png")
    window.sign_out_button.click()
