"""Issue 13 acceptance: a station unlocked by a supervisor serves pages (to those allowed, as bytes);
the same data directory, locked, reveals no page, OCR text, employee name or code, or source file name.

Everything runs for real: ``scanstation serve`` as its own process, an operator importing through it,
Tesseract OCR, SQLCipher, age; then every file under the data directory is searched byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scanstation.errors import PermissionDenied, StationLocked
from scanstation.priorities import SERVICE_NICENESS
from scanstation.service.client import RemoteConnection
from scanstation_tools.synth import PageSpec, render_acr_page

from .stationkit import PASSWORD, make_station
from .test_confidentiality import SIGNATURES

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract")

EMPLOYEE_CODE = "UP-77-918273"
EMPLOYEE_NAME = "Ramesh Chandra Tiwari"
PERIOD = "2017-18"
FILE_STEM = "acr-scan-of-tiwari"


def _signed_in(path: Path, name: str) -> RemoteConnection:
    conn = RemoteConnection(path, timeout=300)
    conn.token = conn.call("sign_in", name=name, password=PASSWORD)["token"]
    return conn


def test_unlocked_serves_pages_locked_reveals_nothing(tmp_path: Path) -> None:
    st = make_station(tmp_path / "st")
    page = render_acr_page(PageSpec(seed=4242, dpi=200))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    source = inputs / f"{FILE_STEM}.png"
    page.image.save(source)
    from scanstation.config import load_config

    sock = load_config(st.config).socket_path
    st.roster(EMPLOYEE_CODE, names={EMPLOYEE_CODE: EMPLOYEE_NAME})
    with st.serve(unlock_as="sup") as service:
        # the service yields the cores to the kiosk: every thread of it runs niced (scanstation/priorities.py)
        tasks = list(Path(f"/proc/{service.pid}/task").iterdir())
        assert tasks and all(int((t / "stat").read_text().rsplit(")", 1)[1].split()[16]) == SERVICE_NICENESS
                             for t in tasks)
        # the operator imports through the running service (an operator alone could not unlock)
        imported = st.run("import", "--user", "op", "--batch", "B-9", "--employee", EMPLOYEE_CODE, "--name",
                          EMPLOYEE_NAME, "--period", PERIOD, str(source), check=True)
        assert "acknowledged page 1 of batch B-9" in imported.stdout
        sup = _signed_in(sock, "sup")
        png = sup.call("page_image", batch="B-9", seq=1)
        assert isinstance(png, bytes) and png.startswith(SIGNATURES["PNG"])  # served as bytes, for display
        op = _signed_in(sock, "op")
        assert op.call("page_image", batch="B-9", seq=1).startswith(SIGNATURES["PNG"])  # their own, in capture
        admin = _signed_in(sock, "admin")
        with pytest.raises(PermissionDenied, match="admin"):
            admin.call("page_image", batch="B-9", seq=1)
        status = sup.call("status")
        assert status["locked"] is False and status["unlocked_by"] == "sup"
        sup.call("lock")
        with pytest.raises(StationLocked):
            sup.call("page_image", batch="B-9", seq=1)
        for conn in (sup, op, admin):
            conn.close()
        views = [line for line in st.run("audit", "show", "--user", "head", check=True).stdout.splitlines()
                 if " page.view " in line]
        assert len(views) == 2  # the supervisor's and the operator's; the admin's refusal is no view

    # locked (the service stopped): search every byte of the data directory
    texts = [ln.strip().encode() for ln in page.text.splitlines() if len(ln.strip()) >= 12]
    assert len(texts) > 5
    needles = {
        "employee code": [EMPLOYEE_CODE.encode()],
        "employee name": [EMPLOYEE_NAME.encode(), EMPLOYEE_NAME.encode("utf-16-le")],
        "ACR period": [f'"{PERIOD}"'.encode()],
        "source file name": [FILE_STEM.encode()],
        "page text": texts,
    }
    files = [f for f in st.data_dir.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"station.db", "audit.db", "people.db", "station.pub"}
    found = []
    for f in files:
        data = f.read_bytes()
        for kind, signature in SIGNATURES.items():  # short ones anywhere would match ciphertext by chance
            if data.startswith(signature) or (kind in ("PNG", "PDF") and signature in data):
                found.append(f"{f.relative_to(st.data_dir)}: {kind} signature")
        for what, values in needles.items():
            if any(v in data for v in values):
                found.append(f"{f.relative_to(st.data_dir)}: {what}")
    assert not found, "\n".join(found)
