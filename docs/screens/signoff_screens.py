"""The unit head's sign-off screens for regenerate.py: a SoftHSM2 token made here (as tests/dsckit.py makes
them) stands in for the DSC token; the unit head reviews the verified batch ACR-2026-010, types a wrong PIN
(the token's answer is shown), then the right one (the batch is signed off and sealed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def token_setup(tmp: Path) -> tuple[dict[str, str], str, Callable[[Any], None]]:
    """(environment, [signoff] configuration, a function binding the certificate to the unit head ``head``)."""
    from tests.dsckit import SoftHsm, make_ca

    hsm = SoftHsm(tmp / "softhsm")
    ca = make_ca("Test CCA")
    signer = ca.issue("Unit Head, Test Unit", kind="rsa")
    token = hsm.token(signer, label="unit-head-dsc")
    cert = signer.write_pem(tmp / "unit-head.pem")

    def bind(st: Any) -> None:
        st.run("users", "certificate", "head", str(cert), check=True)

    return hsm.env, hsm.station_config(token, ca.root_pem(tmp / "root.pem")), bind


def screens(window: Any, sign_in: Callable[[str], None], until: Callable[[Callable[[], bool], str], None],
            shot: Callable[[str], None]) -> None:
    from tests.dsckit import PIN

    sign_in("head")
    until(lambda: window.stack.currentWidget() is window.work, "the unit head's work screen")
    window.tabs.setCurrentWidget(window.signoff)
    screen = window.signoff
    until(lambda: screen.summary is not None, "the batch summary")
    screen.pin.setText(PIN)  # shown as dots
    screen.pin.setFocus()
    shot("signoff.png")
    screen.pin.setText("000000")
    screen.sign()
    until(lambda: not screen.signing, "the wrong PIN's answer")
    shot("signoff-wrong-pin.png")
    screen.pin.setText(PIN)
    screen.sign()
    until(lambda: not screen.signing, "the signature")
    time.sleep(0.5)
    shot("signoff-done.png")
    window.sign_out_button.click()
