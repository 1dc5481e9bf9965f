"""The progress dashboard (issue 14, scope 7), offscreen, against a real station service: a roster of three
people × two periods, one batch imported by ``sup`` and verified by ``sup2``, another still scanning by ``op``;
the unit head sees the numbers, the charts, per operator, the flags and the missing files; an operator is
refused by the service."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from scanstation.config import load_config
from scanstation.service.client import LocalConnection
from scanstation.service.core import StationService

from .pagekit import acr_page_files
from .stationkit import PASSWORD, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

WAIT = 60_000
ROSTER = """Employee Code,Name (Hindi),Name (English),Rank
E1,राम कुमार,Ram Kumar,Constable
E2,सीता देवी,Sita Devi,Head Constable
E3,अनिल शर्मा,Anil Sharma,Sub-Inspector
"""


def _pages(tmp: Path, seed: int, n: int) -> list[str]:
    return acr_page_files(tmp, seed, n, prefix="d")


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> StationEnv:
    root = tmp_path_factory.mktemp("dash")
    st = make_station(root / "st", extra_config='\n[roster]\nperiods = ["2019-20", "2020-21"]\n')
    (root / "roster.csv").write_text(ROSTER, encoding="utf-8")
    st.run("roster", "import", str(root / "roster.csv"), check=True)
    st.run("import", "--batch", "D1", "--employee", "E1", "--period", "2019-20", *_pages(root, 1, 2), check=True)
    st.run("import", "--batch", "D1", "--employee", "E2", "--period", "2020-21", *_pages(root, 2, 1), check=True)
    st.verify("D1")
    with StationService(load_config(st.config)) as service:  # an operator scans through the running service
        service.unlock(service.sign_in("sup", PASSWORD), PASSWORD)
        conn = LocalConnection(service, owns_service=False)
        conn.token = service.sign_in("op", PASSWORD).token
        done = conn.call("run", argv=["import", "--batch", "D2", "--employee", "E3", "--period", "2019-20",
                                      *_pages(root, 3, 1)], cwd=str(root))
        assert done["exit"] == 0
    return st


@pytest.fixture
def dashboard(station: StationEnv, qtbot: Any) -> Iterator[Any]:
    from ui.dashboard import DashboardScreen
    from ui.service_link import ServiceLink

    service = StationService(load_config(station.config))
    link = ServiceLink(LocalConnection(service), in_process=True)
    link.token = link.call("sign_in", name="head", password=PASSWORD)["token"]
    link.call("unlock", password=PASSWORD)
    widget = DashboardScreen(link, days=7)
    qtbot.addWidget(widget)
    widget.resize(1366, 700)
    widget.show()
    yield widget
    from ui.qt import QThreadPool

    QThreadPool.globalInstance().waitForDone(30_000)
    link.close()


def test_dashboard_shows_progress_against_the_roster(dashboard: Any, qtbot: Any) -> None:
    import pyqtgraph as pg

    dashboard.refresh()
    qtbot.waitUntil(lambda: bool(dashboard.data), timeout=WAIT)
    data = dashboard.data
    assert data["periods"] == ["2019-20", "2020-21"]
    assert data["expected"] == 6
    assert data["stages"] == {"scanned": 3, "verified": 2, "signed": 0, "uploaded": 0}
    text = dashboard.summary.text()
    assert "अपेक्षित / expected: 6" in text and "(50 %)" in text and "(33 %)" in text
    operators = {dashboard.operators.item(r, 0).text(): dashboard.operators.item(r, 1).text()
                 for r in range(dashboard.operators.rowCount())}
    assert operators == {"sup": "2", "op": "1"}
    missing = {(dashboard.missing.item(r, 0).text(), dashboard.missing.item(r, 1).text())
               for r in range(dashboard.missing.rowCount())}
    assert missing == {("E2", "2019-20"), ("E1", "2020-21"), ("E3", "2020-21")}
    bars = [i for i in dashboard.period_chart.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
    assert len(bars) == 5  # expected, scanned, verified, signed, uploaded
    heights = {str(b.name()): list(b.opts["height"]) for b in bars}
    assert heights["अपेक्षित / expected"] == [3, 3] and heights["सत्यापित / verified"] == [1, 1]
    curves = dashboard.day_chart.getPlotItem().listDataItems()
    assert len(curves) == 5
    pages_today = dict(zip(*curves[0].getData(), strict=True))[6]  # the last of 7 days is today
    assert pages_today == 4
    assert "verified" in [d for d in data["by_day"][-1]] and data["by_day"][-1]["verified"] == 2


def test_dashboard_refused_for_an_operator(station: StationEnv, qtbot: Any) -> None:
    from ui.dashboard import DashboardScreen
    from ui.service_link import ServiceLink

    service = StationService(load_config(station.config))
    link = ServiceLink(LocalConnection(service), in_process=True)
    unlocker = service.sign_in("sup", PASSWORD)
    service.unlock(unlocker, PASSWORD)
    link.token = link.call("sign_in", name="op", password=PASSWORD)["token"]
    widget = DashboardScreen(link)
    qtbot.addWidget(widget)
    widget.refresh()
    qtbot.waitUntil(lambda: bool(widget.message.text()), timeout=WAIT)
    assert widget.message.text().startswith("अनुमति नहीं / ") and "view pages" in widget.message.text()
    assert widget.data == {}
    from ui.qt import QThreadPool

    QThreadPool.globalInstance().waitForDone(30_000)
    link.close()


def test_shell_tabs_for_each_role(station: StationEnv, qtbot: Any) -> None:
    """The kiosk shows Verification to supervisors only and Progress to supervisors and unit heads."""
    from ui.service_link import ServiceLink
    from ui.shell import StationWindow

    config = load_config(station.config)
    service = StationService(config)
    service.unlock(service.sign_in("sup", PASSWORD), PASSWORD)
    window = StationWindow(config, link=ServiceLink(LocalConnection(service), in_process=True))
    qtbot.addWidget(window)
    window.resize(1366, 768)
    window.show()
    seen: dict[str, tuple[bool, bool]] = {}
    for who in ("sup2", "head", "op"):
        qtbot.waitUntil(lambda: window.stack.currentWidget() is window.sign_in, timeout=WAIT)
        window.sign_in.name.setText(who)
        window.sign_in.password.setText(PASSWORD)
        window.sign_in.button.click()
        qtbot.waitUntil(lambda: window.stack.currentWidget() is window.work, timeout=WAIT)
        tabs = window.tabs
        seen[who] = (tabs.isTabVisible(tabs.indexOf(window.verify)), tabs.isTabVisible(tabs.indexOf(window.dashboard)))
        if who == "head":
            tabs.setCurrentWidget(window.dashboard)
            qtbot.waitUntil(lambda: bool(window.dashboard.data), timeout=WAIT)
        window.sign_out()
    assert seen == {"sup2": (True, True), "head": (False, True), "op": (False, False)}
