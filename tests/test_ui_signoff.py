"""The unit head's screen (issue 15, scope 3), offscreen, against a real station service and a SoftHSM2 token:
the verified batch is listed with its summary, a wrong PIN is reported with what the token says and leaves the
batch as it was, the right PIN signs it off (the steps tick off) and seals it; the PIN field never keeps the
PIN; a supervisor has no such screen and the service refuses them anyway."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from scanstation.config import load_config
from scanstation.errors import PermissionDenied
from scanstation.service.client import LocalConnection
from scanstation.service.core import StationService

from .dsckit import PIN, SoftHsm, make_ca, require_softhsm, softhsm_conf
from .pagekit import acr_page_files
from .stationkit import PASSWORD, StationEnv, make_station

# sign-ins and unlocks of the services these tests run in this process at the test stations' argon2id cost
pytestmark = pytest.mark.usefixtures("cheap_argon2")

WAIT = 120_000


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StationEnv]:
    require_softhsm()
    root = tmp_path_factory.mktemp("ui-signoff")
    hsm = SoftHsm(root / "softhsm")
    ca = make_ca("Test CCA")
    signer = ca.issue("Unit Head Screen", kind="p256")
    token = hsm.token(signer, label="dsc-screen")
    st = make_station(root / "st", signoff=True, extra_env=hsm.env,
                      extra_config=hsm.station_config(token, ca.root_pem(root / "root.pem")))
    st.run("users", "certificate", "head", str(signer.write_pem(root / "head.pem")), check=True)
    st.roster("E100", "E200", names={"E100": "राम कुमार", "E200": "सीता देवी"})
    st.run("import", "--batch", "U1", "--employee", "E100", "--period", "2019-20",
           *acr_page_files(root, 11, 2, prefix="u"), check=True)
    st.run("import", "--batch", "U1", "--employee", "E200", "--period", "2019-20",
           *acr_page_files(root, 12, 1, prefix="v"), check=True)
    st.verify("U1")
    with softhsm_conf(hsm):  # the in-process service loads the module with it
        yield st


def _link(st: StationEnv, who: str) -> Any:
    from ui.service_link import ServiceLink

    link = ServiceLink(LocalConnection(StationService(load_config(st.config))), in_process=True)
    link.token = link.call("sign_in", name=who, password=PASSWORD)["token"]
    return link


@pytest.fixture
def screen(station: StationEnv, qtbot: Any) -> Iterator[Any]:
    from ui.signoff import SignoffScreen

    link = _link(station, "head")
    link.call("unlock", password=PASSWORD)
    widget = SignoffScreen(link)
    qtbot.addWidget(widget)
    widget.resize(1366, 700)
    widget.show()
    yield widget
    from ui.qt import QThreadPool

    QThreadPool.globalInstance().waitForDone(60_000)
    link.close()


def _type_pin(qtbot: Any, screen: Any, pin: str) -> None:
    from ui.qt import Qt

    qtbot.keyClick(screen, Qt.Key.Key_F10)
    assert screen.pin.hasFocus() or screen.pin.isEnabled()
    qtbot.keyClicks(screen.pin, pin)
    qtbot.keyClick(screen.pin, Qt.Key.Key_Return)
    assert screen.pin.text() == ""  # emptied at once: the PIN does not wait on the screen


def test_unit_head_reviews_and_signs_off(station: StationEnv, screen: Any, qtbot: Any) -> None:
    screen.shown()
    qtbot.waitUntil(lambda: screen.summary is not None, timeout=WAIT)
    assert screen.batch == "U1" and screen.queue.count() == 1
    s = screen.summary
    assert [f["employee_code"] for f in s["files"]] == ["E100", "E200"]
    assert screen.files.rowCount() == 2 and screen.files.item(0, 2).text() == "राम कुमार"
    assert "sup2" in screen.people.text()  # who verified it is on the screen

    # a wrong PIN: the token's answer is shown, nothing is signed
    _type_pin(qtbot, screen, "000000")
    qtbot.waitUntil(lambda: not screen.signing, timeout=WAIT)
    assert "PIN" in screen.message.text() and "not signed" in screen.message.text()
    assert screen.failed_step == "token" and "✗" in screen.progress.text()  # the step that failed is marked
    assert screen.batch == "U1" and screen.summary is not None and screen.sign_button.isEnabled()

    # the right PIN: every step reported, the batch sealed and gone from the list
    _type_pin(qtbot, screen, PIN)
    qtbot.waitUntil(lambda: not screen.signing, timeout=WAIT)
    assert "signed off and sealed" in screen.message.text(), screen.message.text()
    assert screen.steps_done == ["token", "certificate", "sheet", "package"] and "✗" not in screen.progress.text()
    assert "Unit Head Screen" in screen.result.text()
    qtbot.waitUntil(lambda: screen.queue.count() == 0, timeout=WAIT)
    assert "nothing to sign off" in screen.queue_empty.text()
    states = {r["name"]: r["state"] for r in screen.link.call("batches")}
    assert states["U1"] == "sealed"


def test_supervisor_cannot_sign_off(station: StationEnv) -> None:
    link = _link(station, "sup")
    try:
        with pytest.raises(PermissionDenied):
            link.call("signoff_summary", batch="U1")
        with pytest.raises(PermissionDenied):
            link.call("signoff", batch="U1", pin=PIN)
    finally:
        link.close()
