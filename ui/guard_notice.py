"""The device guard's notice: a storage device, phone or network adapter was connected to the station.

The station service's device guard (scanstation/guard/, docs/station-service.md) locks the station and ends
every session the moment such a device appears.  The kiosk then finds its session gone (within
:data:`ui.shell.GUARD_POLL_MS`: the page on the screen goes at once), and whoever signs in next gets this
screen, red and full, instead of their work: what was connected and when, as the service's ``status``
reports it (``guard.tripped_by``).  A supervisor or the unit head goes on to the unlock, which clears the
trip (the service audits it); an operator can only call one; the admin, whose work needs no key, goes on
to the accounts.
"""

from __future__ import annotations

from typing import Any

from .qt import QHBoxLayout, QLabel, Qt, QVBoxLayout, QWidget, Signal
from .widgets import CENTER, bi, button, heading

GUARD_TITLE = bi("स्टेशन बंद: एक भंडारण उपकरण जोड़ा गया", "Station locked: a storage device was connected")
MAY_GO_ON = ("supervisor", "unit-head", "admin")


def device_line(entry: dict[str, Any]) -> str:
    """One device of ``guard.tripped_by``: why, what (USB strings and id), when, whether it is still there."""
    what = " ".join(str(x) for x in (entry.get("manufacturer"), entry.get("product")) if x) or str(
        entry.get("name") or entry.get("devpath") or "")
    ident = f" ({entry['vendor_product']})" if entry.get("vendor_product") else ""
    at = str(entry.get("at") or "")[:19].replace("T", " ")
    still = bi("अभी भी जुड़ा है", "still connected") if entry.get("connected") else bi("हटाया गया", "removed")
    return f"• {entry.get('why', '')}: {what}{ident} · {at} UTC · {still}"


class GuardNotice(QWidget):
    go_on = Signal()  # supervisor, unit head: to the unlock; admin: to the work screen
    check_again = Signal()
    sign_out_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet("GuardNotice { background: #8e0000; } QLabel { color: white; }")
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        self.title = heading(GUARD_TITLE, 28)
        outer.addWidget(self.title)
        self.devices = QLabel("")
        self.devices.setAlignment(CENTER)
        self.devices.setWordWrap(True)
        outer.addWidget(self.devices)
        self.what_now = QLabel("")
        self.what_now.setAlignment(CENTER)
        self.what_now.setWordWrap(True)
        outer.addWidget(self.what_now)
        row = QHBoxLayout()
        row.addStretch(1)
        self.go_button = button("")
        self.again = button(bi("फिर देखें", "Check again"))
        self.sign_out = button(bi("बाहर निकलें", "Sign out"))
        for b in (self.go_button, self.again, self.sign_out):
            row.addWidget(b)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(3)
        self.go_button.clicked.connect(self.go_on)
        self.again.clicked.connect(self.check_again)
        self.sign_out.clicked.connect(self.sign_out_requested)

    def prepare(self, name: str, role: str, guard: dict[str, Any]) -> None:
        devices = [d for d in guard.get("tripped_by") or [] if isinstance(d, dict)]
        since = str(guard.get("since") or "")[:19].replace("T", " ")
        self.devices.setText("\n".join([bi(f"{since} UTC से", f"since {since} UTC")]
                                       + [device_line(d) for d in devices]))
        if role in ("supervisor", "unit-head"):
            self.what_now.setText(bi(f"{name}: उपकरण हटाएँ; आपका अनलॉक इसे दर्ज करके हटा देगा",
                                     f"{name}: remove the device; your unlock records and clears this"))
            self.go_button.setText(bi("स्टेशन खोलें", "Unlock the station"))
        elif role == "admin":
            self.what_now.setText(bi("पर्यवेक्षक को बुलाएँ; खाते प्रबंधित किए जा सकते हैं",
                                     "call a supervisor; accounts can still be managed"))
            self.go_button.setText(bi("खाते", "Accounts"))
        else:
            self.what_now.setText(bi("पर्यवेक्षक को बुलाएँ: केवल वे स्टेशन फिर से खोल सकते हैं",
                                     "call a supervisor: only they can unlock the station again"))
        self.go_button.setVisible(role in MAY_GO_ON)


__all__ = ["GUARD_TITLE", "GuardNotice", "device_line"]
