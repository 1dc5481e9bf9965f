"""The operator's screen: pick scanner and profile, scan or resume a batch, confirm ACR files, answer scanner prompts.

A client of the station service like every kiosk screen (:class:`~ui.service_link.ServiceLink`, never a
blocking call on the UI thread).  The scan itself runs in the service (``scan_start``, see
:mod:`scanstation.service.ops_capture`); this screen polls its events (``scan_events``, each call back
within a second) and shows them:

* every page as a tile the moment it is acknowledged, with its processing state; the tile's picture
  comes from ``page_thumbnail`` once the page is cleaned (an operator sees only pages they captured, of a
  batch in capture), a drawn placeholder until then;
* a QR cover sheet opens a new ACR file whose index (employee code, name from the roster, period) is
  shown prefilled: **Enter** confirms it (``index_document``): one keystroke per ACR file;
* a scanner fault (jam, feeder empty, cover open, offline) covers the work area with its message in
  Hindi and English, and **Continue** (Enter, or F5) once fixed; **Stop** (F8) ends the scan;
* an ACR file without a cover sheet is indexed by hand: code or name searched in the roster
  (``roster_search``, Ctrl+F), period, Enter; the next pages scanned go into it;
* scan first, index after: pages scanned with neither a cover sheet nor an index typed first land in no
  ACR file ("unfiled"; the page events' ``document_id`` is None, ``earlier`` ones of a resumed batch
  too).  While there are such pages and no cover sheet's file waits for Enter, the panel says how many
  (in Hindi and English) and that the index confirmed files them: Enter sends ``index_document`` with
  ``pages`` (their seqs), the file is created (or continued) and they go into it, at its end;
* once pages are read (OCR done) - of an ACR file no cover sheet opened (and not indexed on this
  screen), or the first unfiled pages - ``index_suggestions`` is asked once for that file or that set of
  pages: the roster people its text points to are offered in the search list, marked as suggestions,
  the period only as a hint; picking one fills the code as a search result does, and nothing is indexed
  before the operator confirms (``index_document``);
* F9 closes the batch (``close_batch``) for the supervisor; the rescans the supervisor asked for are
  listed (``rescans``): Enter on one, F5, and the page scanned takes the old page's place
  (``replace_page``).

Everything is on the keyboard (the shortcuts are written on the buttons).  There is no clipboard (the
text fields refuse copy, cut and paste), no save, no print and no file dialog: pages never leave the
service except as the thumbnails shown here.

The screen is split in modules by what they hold: this one the screen (its layout, the scan, the lists,
confirming ACR files, closing the batch); :mod:`ui.operator_prompt` the scanner-fault prompt;
:mod:`ui.operator_index` the ACR file panel and the roster search's list; :mod:`ui.operator_tiles` the
page tiles; :mod:`ui.no_clipboard` the fields' refusal of copy and paste.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from .no_clipboard import no_clipboard
from .operator_index import IndexPanel
from .operator_prompt import DevicePrompt
from .operator_tiles import THUMB_WIDTH, placeholder, tile_text, tiles_view
from .qt import (
    QComboBox,
    QHBoxLayout,
    QIcon,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPixmap,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
    qt_alive,
)
from .service_link import ServiceLink
from .watermark import Watermark
from .widgets import bi, button, describe_error, message_line, show_error, show_ok, text_field

POLL_MS = 250
ENDED = ("stopped", "failed")
SUGGEST_FROM = 3  # index_suggestions reads the first pages of a file; of the unfiled pages, these many
READ = ("done", "failed", "skipped")  # OCR states that will not change by waiting
# The page a refusal of index_document's ``pages`` names ("page 4 of batch ... was deleted", "no page 4 in
# batch ..."): the service's own wording (scanstation.verify.core.unfiled_pages).
_REFUSED_PAGE = re.compile(r"\bpage (\d+)\b")


def _unknown_operation(err: BaseException) -> bool:
    """The service does not offer this operation (yet): the screen does without it."""
    return "unknown operation" in str(getattr(err, "message", err))


class OperatorScreen(QWidget):
    """The scanning screen of operators (and of a supervisor who scans)."""

    def __init__(self, link: ServiceLink, *, poll_ms: int = POLL_MS, watermark: Watermark | None = None) -> None:
        """``watermark``: the kiosk window's (station, person, time); a screen made alone gets its own, so
        that its tiles are never shown without one."""
        super().__init__()
        self.link = link
        self.watermark = watermark if watermark is not None else Watermark()
        self.job: str | None = None
        self.job_state = ""
        self.batch = ""
        self.since = 0
        self.tiles: dict[int, QListWidgetItem] = {}  # seq -> tile
        self.pages: dict[int, dict[str, Any]] = {}  # seq -> last known fields
        self.to_confirm: deque[dict[str, Any]] = deque()  # ACR files from cover sheets awaiting Enter
        self.next_document: int | None = None  # an ACR file indexed by hand: the next pages go into it
        self.next_document_batch = ""  # ... of this batch
        self.replace_seq: int | None = None  # a rescan asked for: the next page scanned takes its place
        self.job_choice: tuple[Any, Any, str] | None = None  # (scanner, profile, batch) of the current job
        self.thumbnails_offered = True
        self._thumb_queue: deque[int] = deque()
        self._thumb_busy = False
        self._polling = False
        self._generation = 0  # bumped by reset(): answers to earlier calls are dropped
        self._indexing_batch = ""
        self.suggestions_offered = True  # False once the service said it has no index_suggestions
        self._cover_documents: set[int] = set()  # ACR files opened by a cover sheet (prefilled, no suggestions)
        self._indexed_documents: set[int] = set()  # ACR files indexed on this screen
        self._suggestions_asked: set[int] = set()  # index_suggestions asked once per ACR file
        self.unfiled: set[int] = set()  # seqs of the batch shown scanned without an ACR file, not yet filed
        self._unfiled_asked: set[tuple[int, ...]] = set()  # index_suggestions asked once per set of pages
        self._replacing: set[int] = set()  # rescans just scanned, about to take an old page's place
        # Jobs this screen left or started, counted: a ``scan_jobs`` answer asked for before the last of them is
        # stale (the calls run side by side, so it may list a job the screen has just stopped), and a job the
        # screen left is never followed again (its replayed pages are not new scans).
        self._job_epoch = 0
        self._left_jobs: set[str] = set()
        self._filing: list[int] = []  # the unfiled pages the index on its way files

        outer = QVBoxLayout(self)
        top = QHBoxLayout()
        # sized to fit the kiosk's 1366 x 768 screen with the shell around it
        self.scanner = QComboBox()
        self.scanner.setMinimumWidth(170)
        self.profile = QComboBox()
        self.profile.setMinimumWidth(170)
        self.batch_name = text_field(bi("बैच का नाम", "batch name"))
        self.batch_name.setMinimumWidth(140)
        self.resume_list = QComboBox()
        self.resume_list.setMinimumWidth(140)
        for label, widget in ((bi("स्कैनर", "Scanner"), self.scanner), (bi("प्रोफ़ाइल", "Profile"), self.profile),
                              (bi("बैच", "Batch"), self.batch_name), (bi("जारी रखें", "Resume"), self.resume_list)):
            top.addWidget(QLabel(label))
            top.addWidget(widget, 1)
        outer.addLayout(top)
        self.profile_note = QLabel("")
        self.profile_note.setWordWrap(True)
        outer.addWidget(self.profile_note)

        buttons = QHBoxLayout()
        self.scan_button = button(bi("स्कैन करें", "Scan") + "  [F5]")
        self.stop_button = button(bi("रोकें", "Stop") + "  [F8]")
        self.close_button = button(bi("बैच बंद करें", "Close batch") + "  [F9]")
        self.refresh_button = button(bi("ताज़ा करें", "Refresh") + "  [Ctrl+R]")
        for b in (self.scan_button, self.stop_button, self.close_button, self.refresh_button):
            buttons.addWidget(b)
        self.state_label = QLabel("")
        buttons.addWidget(self.state_label, 2)
        outer.addLayout(buttons)

        middle = QHBoxLayout()
        left = QVBoxLayout()
        self.tiles_view = tiles_view(self.watermark)
        left.addWidget(self.tiles_view, 1)
        self.rescans_label = QLabel(bi("दोबारा स्कैन करने को कहे गए पन्ने", "Pages the supervisor asked to rescan")
                                    + "  [Enter: " + bi("दोबारा स्कैन", "rescan") + "]")
        left.addWidget(self.rescans_label)
        self.rescans = QListWidget()
        self.rescans.setMaximumHeight(72)
        left.addWidget(self.rescans)
        self.rescans_label.hide()  # shown when the supervisor asked for rescans
        self.rescans.hide()
        middle.addLayout(left, 3)
        right = QVBoxLayout()
        # A scanner fault takes the ACR file's place until it is answered: one thing at a time, and Enter
        # there means Continue.
        self.prompt = DevicePrompt()
        right.addWidget(self.prompt)
        self.index = IndexPanel()
        right.addWidget(self.index)
        self.prompt.partner = self.index  # hidden while the prompt shows
        right.addStretch(1)
        middle.addLayout(right, 2)
        outer.addLayout(middle, 1)
        self.message = message_line()
        outer.addWidget(self.message)

        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self._poll)

        self.scan_button.clicked.connect(self.scan)
        self.stop_button.clicked.connect(self.stop)
        self.close_button.clicked.connect(self.close_batch)
        self.refresh_button.clicked.connect(self.refresh)
        self.prompt.continue_button.clicked.connect(self.scan)
        self.prompt.stop_button.clicked.connect(self.stop)
        self.index.confirm_button.clicked.connect(self.confirm)
        self.index.code.returnPressed.connect(self.confirm)
        self.index.period.returnPressed.connect(self.confirm)
        self.index.search.textEdited.connect(self._search_soon)
        self.index.search.returnPressed.connect(self.index.pick_first_result)
        self.index.results.itemActivated.connect(self.index.pick_result)
        # after the pick (connected later, called later): a suggestion's own file shown hides the unfiled count
        self.index.results.itemActivated.connect(lambda _item: self._show_unfiled())
        self.index.search.returnPressed.connect(self._show_unfiled)
        self.profile.currentIndexChanged.connect(self._profile_chosen)
        self.resume_list.activated.connect(self._resume_chosen)
        self.rescans.itemActivated.connect(self._rescan_chosen)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(250)
        self._search_timer.timeout.connect(self._search)
        self._profiles: list[dict[str, Any]] = []
        for field in (self.batch_name, self.index.search, self.index.code, self.index.period, self.index.reason):
            no_clipboard(field)
        # The screen's keys, handled in keyPressEvent (a key a field does not use comes up to the screen)
        self.keys: dict[tuple[Qt.Key, bool], Any] = {
            (Qt.Key.Key_F5, False): self.scan, (Qt.Key.Key_F8, False): self.stop,
            (Qt.Key.Key_F9, False): self.close_batch, (Qt.Key.Key_R, True): self.refresh,
            (Qt.Key.Key_F, True): self.index.search.setFocus,
        }
        self._update_buttons()

    def _call(self, op: str, args: dict[str, Any], done: Any, failed: Any) -> None:
        """``link.submit``, but an answer that comes back after a reset (sign-out, another person, the window
        closing, the window deleted without a reset) is dropped: it belongs to a screen that is gone."""
        generation = self._generation

        def current() -> bool:
            return qt_alive(self) and qt_alive(self.message) and generation == self._generation

        def on_done(result: Any) -> None:
            if current():
                done(result)

        def on_failed(err: BaseException) -> None:
            if current():
                failed(err)

        self.link.submit(op, args, on_done, on_failed)

    # ------------------------------------------------------------------ lists: scanners, profiles, batches, rescans
    def refresh(self) -> None:
        self._call("scanners", {}, self._scanners, self._failed)
        self._call("profiles", {}, self._profiles_listed, self._failed)
        self._call("operator_batches", {}, self._batches, self._failed)
        self._call("rescans", {}, self._rescans, self._optional_failed)
        if self.job is None:
            epoch = self._job_epoch
            self._call("scan_jobs", {}, lambda jobs: self._jobs(jobs, epoch), self._failed)

    def _scanners(self, reply: Any) -> None:
        current = self.scanner.currentData()
        self.scanner.clear()
        for d in reply.get("devices", []):
            self.scanner.addItem(f"{d['name']} — {d['vendor']} {d['model']}".strip(), d["name"])
        if current is not None and self.scanner.findData(current) >= 0:
            self.scanner.setCurrentIndex(self.scanner.findData(current))
        if reply.get("searching"):
            QTimer.singleShot(1000, self, lambda: self._call("scanners", {}, self._scanners, self._failed))
        elif not reply.get("devices"):
            show_error(self.message, RuntimeError(bi("कोई स्कैनर नहीं मिला", "no scanner found") +
                                                  (f": {reply['error']}" if reply.get("error") else "")))

    def _profiles_listed(self, reply: Any) -> None:
        current = self.profile.currentData()
        self._profiles = list(reply.get("profiles", []))
        self.profile.blockSignals(True)
        self.profile.clear()
        for p in self._profiles:
            self.profile.addItem(p["name"], p["name"])
        wanted = current or reply.get("default")
        if wanted and self.profile.findData(wanted) >= 0:
            self.profile.setCurrentIndex(self.profile.findData(wanted))
        self.profile.blockSignals(False)
        self._profile_chosen()

    def _profile_chosen(self, _index: int = 0) -> None:
        name = self.profile.currentData()
        p = next((x for x in self._profiles if x["name"] == name), None)
        if p is None:
            self.profile_note.setText("")
            return
        self.profile_note.setText(
            f"{p['source']} · {p['mode']} · {p['resolution']} dpi · {p['page_size']} · "
            + bi("कवर शीट", "cover sheets") + (" ✓" if p["separators"] else " ✗") + " · "
            + bi("खाली पन्ने चिह्नित, हटाए नहीं जाते", "blank pages flagged, never dropped")
            + (f" · {p['description']}" if p.get("description") else ""))

    def _batches(self, rows: Any) -> None:
        self.resume_list.clear()
        self.resume_list.addItem(bi("— नया बैच —", "— new batch —"), "")
        for b in rows or []:
            mark = bi(" (लौटाया गया)", " (returned)") if b.get("returned") else ""
            self.resume_list.addItem(f"{b['name']} · {b['pages']} p{mark}", b["name"])

    def _resume_chosen(self, index: int) -> None:
        name = self.resume_list.itemData(index)
        if name:
            self.batch_name.setText(str(name))

    def _rescans(self, rows: Any) -> None:
        self.rescans.clear()
        for r in rows or []:
            reason = r.get("reason") or ""
            item = QListWidgetItem(f"{r.get('batch', '')} · {bi('पन्ना', 'page')} {r.get('seq')} · {reason}")
            item.setData(Qt.ItemDataRole.UserRole, r)
            self.rescans.addItem(item)
        self.rescans.setVisible(bool(rows))
        self.rescans_label.setVisible(bool(rows))

    def _rescan_chosen(self, item: QListWidgetItem) -> None:
        """Enter on a rescan: the next page scanned into that batch replaces it (same ACR file and place)."""
        row = item.data(Qt.ItemDataRole.UserRole) or {}
        if self.job is not None and str(row.get("batch")) != self.batch:
            if self.job_state == "running":
                show_error(self.message, RuntimeError(bi("पहले यह स्कैन रोकें", "stop this scan first")))
                return
            self._detach()  # a scan of another batch waiting or done: the rescan starts a scan of its own
        self.replace_seq = int(row["seq"])
        self.batch_name.setText(str(row.get("batch", "")))
        show_ok(self.message, bi(f"पन्ना {self.replace_seq} स्कैनर पर रखें और F5 दबाएँ",
                                 f"put page {self.replace_seq} on the scanner and press F5: the new scan "
                                 "takes its place"))
        self.scan_button.setFocus()

    def _replace(self, new_seq: int) -> None:
        old, self.replace_seq = self.replace_seq, None
        self._replacing.add(new_seq)

        def failed(err: BaseException) -> None:
            self._replace_failed(new_seq, err)

        self._call("replace_page", {"batch": self.batch, "old_seq": old, "new_seq": new_seq},
                   lambda _r: self._replaced(old, new_seq), failed)

    def _replace_failed(self, new_seq: int, err: BaseException) -> None:
        """The rescan did not take the old page's place: it is a page like any other (unfiled if it is)."""
        self._replacing.discard(new_seq)
        if new_seq in self.pages:
            self._track_unfiled(new_seq, self.pages[new_seq])
        show_error(self.message, err)

    def _replaced(self, old: int | None, new: int) -> None:
        # the rescan takes the old page's ACR file: it is unfiled only if the old page was
        self._replacing.discard(new)
        if old is not None and old in self.unfiled:
            self.unfiled.discard(old)
            self.unfiled.add(new)
        self._show_unfiled()
        show_ok(self.message, bi(f"पन्ना {new} ने पन्ना {old} की जगह ली", f"page {new} replaces page {old}"))
        self._call("rescans", {}, self._rescans, self._optional_failed)

    def _jobs(self, jobs: Any, epoch: int) -> None:
        # the kiosk was started again while a scan of this person's ran on: follow it again.  Not a job this
        # screen has left, nor an answer from before the screen started or left one.
        jobs = [j for j in jobs or [] if str(j.get("job")) not in self._left_jobs]
        if self.job is None and jobs and epoch == self._job_epoch:
            j = jobs[0]
            if self.replace_seq is not None:
                # its events come again from the start, earlier runs' pages among them: none is the rescan
                self.replace_seq = None
                show_error(self.message, RuntimeError(bi("एक स्कैन अभी चल रहा था: रीस्कैन फिर से चुनें",
                                                         "a scan of yours was still running: choose the rescan "
                                                         "again")))
            self._attach(str(j["job"]), str(j["batch"]))
            self.job_choice = (j.get("device"), j.get("profile"), str(j["batch"]))

    # ------------------------------------------------------------------ scanning
    def scan(self) -> None:
        """F5: start a scan, or continue the current one (after a fault was fixed, or to scan more)."""
        chosen = (self.scanner.currentData(), self.profile.currentData(), self.batch_name.text().strip())
        if self.job is not None and self.job_state == "idle" and chosen != self.job_choice:
            self._detach()  # another scanner, profile or batch chosen since: a new scan, not "more of it"
        if self.job is not None and self.job_state in ("waiting", "idle"):
            args: dict[str, Any] = {"job": self.job}
            if self.next_document is not None:
                args["document_id"] = self.next_document
            self.scan_button.setEnabled(False)
            self._call("scan_continue", args, self._continued, self._scan_failed)
            return
        if self.job is not None and self.job_state == "running":
            return
        batch = self.batch_name.text().strip()
        device, profile = self.scanner.currentData(), self.profile.currentData()
        if not batch or not device or not profile:
            show_error(self.message, RuntimeError(bi("स्कैनर, प्रोफ़ाइल और बैच चुनें",
                                                     "choose a scanner, a profile and a batch")))
            return
        args = {"batch": batch, "device": device, "profile": profile}
        if self.next_document is not None and batch == self.next_document_batch:
            args["document_id"] = self.next_document
        self.scan_button.setEnabled(False)
        self._call("scan_start", args, self._started, self._scan_failed)

    def _started(self, reply: Any) -> None:
        self.tiles.clear()
        self.pages.clear()
        self.tiles_view.clear()
        self._thumb_queue.clear()
        self.unfiled.clear()  # the job's events (its earlier pages too) say again which are unfiled
        if self.index.suggestions_shown and self.index.suggested_document is None:
            self.index.drop_suggestions()  # they were for the last scan's unfiled pages
        self._show_unfiled()
        self._attach(str(reply["job"]), str(reply["batch"]))
        self.job_choice = (reply.get("device"), reply.get("profile"), str(reply["batch"]))
        show_ok(self.message, bi("स्कैन शुरू", "scanning started"))

    def _attach(self, job: str, batch: str) -> None:
        self._job_epoch += 1
        self.job, self.batch, self.since, self.job_state = job, batch, 0, "running"
        self.batch_name.setText(batch)
        self.next_document = None
        self.timer.start()
        self._update_buttons()

    def _continued(self, reply: Any) -> None:
        self.next_document = None
        self.job_state = str(reply["state"])
        self.prompt.hide()
        self.timer.start()
        show_ok(self.message, bi("स्कैन जारी", "scanning"))
        self._update_buttons()

    def _scan_failed(self, err: BaseException) -> None:
        show_error(self.message, err)
        self._update_buttons()

    def stop(self) -> None:
        if self.job is None:
            return
        self._call("scan_stop", {"job": self.job}, lambda r: None, self._failed)

    def _poll(self) -> None:
        if self.job is None or self._polling:
            return
        self._polling = True
        self._call("scan_events", {"job": self.job, "since": self.since, "wait": 0.5}, self._events,
                         self._poll_failed)

    def _poll_failed(self, err: BaseException) -> None:
        self._polling = False
        if self.job is None:  # an answer for a job this screen has left (signed out, window closed)
            return
        show_error(self.message, err)
        if "no scan job" in describe_error(err):
            self.timer.stop()
            self.job = None
            self._update_buttons()

    def _events(self, reply: Any) -> None:
        self._polling = False
        if reply.get("job") != self.job:
            return  # an answer for a job this screen has left
        for event in reply.get("events", []):
            self._event(event)
        self.since = int(reply.get("next", self.since))
        self.job_state = str(reply.get("state", ""))
        if self.job_state == "waiting" and reply.get("prompt") and not self.prompt.isVisible():
            self.prompt.show_prompt(reply["prompt"])
        if self.job_state in ENDED:
            self.prompt.hide()
            self.timer.stop()
            self.job = None
        self._update_buttons()

    def _event(self, e: dict[str, Any]) -> None:
        kind = e.get("kind")
        if kind in ("page", "page_state"):
            # A rescan is scanned after the page it replaces: a page of an earlier run replayed (a job followed
            # again) never takes another's place.
            if kind == "page" and not e.get("earlier") and self.replace_seq is not None \
                    and int(e["seq"]) > self.replace_seq:
                self._replace(int(e["seq"]))  # before _page: a rescan is not an unfiled page
            self._page(e)
        elif kind == "acr_file":
            if e.get("document_id") is not None:
                self._cover_documents.add(int(e["document_id"]))
            self.to_confirm.append(e)
            if len(self.to_confirm) == 1:
                self._show_next_file()
            else:
                self.index.pending.setText(bi(f"{len(self.to_confirm) - 1} और फ़ाइलें पुष्टि के लिए",
                                              f"{len(self.to_confirm) - 1} more file(s) to confirm"))
        elif kind == "device_error":
            self.prompt.show_prompt(e)
        elif kind == "run_finished":
            show_ok(self.message, bi(f"{e.get('acknowledged', 0)} पन्ने सुरक्षित", f"{e.get('acknowledged', 0)} "
                                     "page(s) stored") + (f"; {e['cover_sheets']} " + bi("कवर शीट", "cover sheet(s)")
                                                          if e.get("cover_sheets") else ""))
        elif kind == "input_rejected":
            show_error(self.message, RuntimeError(f"{e.get('input')}: {e.get('reason')}"))
        elif kind == "failed":
            show_error(self.message, RuntimeError(str(e.get("message", ""))))
        elif kind == "stopped":
            show_ok(self.message, bi("स्कैन रोका गया; पन्ने सुरक्षित हैं", "scan stopped; the pages are kept"))

    def _page(self, page: dict[str, Any]) -> None:
        seq = int(page["seq"])
        known = self.pages.setdefault(seq, {})
        known.update({k: v for k, v in page.items() if k not in ("kind", "n")})
        item = self.tiles.get(seq)
        if item is None:
            item = QListWidgetItem(QIcon(placeholder(seq, str(known.get("state")))), "")
            item.setData(Qt.ItemDataRole.UserRole, seq)
            item.setSizeHint(self.tiles_view.gridSize())  # room for the state lines that come later
            self.tiles[seq] = item
            self.tiles_view.addItem(item)
            self.tiles_view.scrollToItem(item)
        item.setText(tile_text(known))
        self._track_unfiled(seq, known)
        self._suggest_for(known)
        if known.get("state") == "processed" and not known.get("thumb") and self.thumbnails_offered:
            known["thumb"] = "queued"
            self._thumb_queue.append(seq)
            self._next_thumbnail()

    # ------------------------------------------------------------------ thumbnails (H2's page_thumbnail)
    def _next_thumbnail(self) -> None:
        if self._thumb_busy or not self._thumb_queue or not self.batch:
            return
        seq = self._thumb_queue.popleft()
        self._thumb_busy = True
        def done(data: Any) -> None:
            self._thumbnail(seq, data)

        def failed(err: BaseException) -> None:
            self._thumbnail_failed(seq, err)

        self._call("page_thumbnail", {"batch": self.batch, "seq": seq, "width": THUMB_WIDTH}, done, failed)

    def _thumbnail(self, seq: int, data: Any) -> None:
        self._thumb_busy = False
        pixmap = QPixmap()
        if isinstance(data, bytes | bytearray) and pixmap.loadFromData(bytes(data)) and seq in self.tiles:
            self.tiles[seq].setIcon(QIcon(pixmap))
            self.pages[seq]["thumb"] = "shown"
        self._next_thumbnail()

    def _thumbnail_failed(self, seq: int, err: BaseException) -> None:
        self._thumb_busy = False
        if seq in self.pages:
            self.pages[seq]["thumb"] = None  # asked again at the page's next state change
        if _unknown_operation(err):
            self.thumbnails_offered = False  # a service without thumbnails: the drawn tiles stay
            self._thumb_queue.clear()
            return
        self._next_thumbnail()

    # ------------------------------------------------------------------ pages scanned without an ACR file
    def _track_unfiled(self, seq: int, page: dict[str, Any]) -> None:
        """Keep ``unfiled`` in step with a page event: in no ACR file (and live, as far as the event says)."""
        dead = bool(page.get("deleted") or page.get("deleted_reason") or page.get("replaced_by"))
        if page.get("document_id") is None and not dead and seq not in self._replacing:
            self.unfiled.add(seq)
        else:
            self.unfiled.discard(seq)
        self._show_unfiled()
        self._suggest_unfiled()

    def _show_unfiled(self) -> None:
        """The panel's count of unfiled pages, while Enter would file them (no cover sheet's file waiting, no
        file of its own picked)."""
        files_them = not self.to_confirm and self.index.document_id is None
        self.index.show_unfiled(len(self.unfiled) if files_them else 0)

    def _unfiled_first(self) -> tuple[int, ...]:
        return tuple(sorted(self.unfiled)[:SUGGEST_FROM])

    def _suggest_unfiled(self) -> None:
        """The first unfiled pages read (OCR done; none still pending): ask once what their text suggests."""
        first = self._unfiled_first()
        states = [self.pages.get(seq, {}).get("ocr") for seq in first]
        if (not first or not self.suggestions_offered or not self.batch or first in self._unfiled_asked
                or not all(s in READ for s in states) or "done" not in states):
            return
        self._unfiled_asked.add(first)

        def done(reply: Any) -> None:
            self._suggested_unfiled(first, reply)

        self._call("index_suggestions", {"batch": self.batch, "seqs": list(first)}, done, self._suggestions_failed)

    def _suggested_unfiled(self, first: tuple[int, ...], reply: Any) -> None:
        if not isinstance(reply, dict) or first != self._unfiled_first():
            return  # those pages were filed (or others came first) meanwhile
        if self._panel_busy():
            return
        self.index.show_suggestions(None, reply.get("candidates"), reply.get("period"))

    def _panel_busy(self) -> bool:
        """Something on the panel the operator typed, picked or is confirming: suggestions never go over it."""
        panel = self.index
        return bool(self.to_confirm or panel.document_id is not None or panel.suggestions_shown
                    or panel.code.text().strip() or panel.search.text().strip() or panel.period.text().strip())

    # ------------------------------------------------------------------ OCR index suggestions
    def _suggest_for(self, page: dict[str, Any]) -> None:
        """A page read (OCR done) of an ACR file no cover sheet opened: ask once what its text suggests."""
        doc = page.get("document_id")
        if (doc is None or page.get("ocr") != "done" or not self.suggestions_offered or not self.batch
                or int(doc) in self._cover_documents or int(doc) in self._indexed_documents
                or int(doc) in self._suggestions_asked):
            return
        doc_id = int(doc)
        self._suggestions_asked.add(doc_id)

        def done(reply: Any) -> None:
            self._suggested(doc_id, reply)

        self._call("index_suggestions", {"batch": self.batch, "document_id": doc_id}, done,
                   self._suggestions_failed)

    def _suggested(self, doc_id: int, reply: Any) -> None:
        """Offered only on an idle panel: no cover sheet's file shown, nothing typed, no other file picked."""
        if not isinstance(reply, dict) or doc_id in self._indexed_documents:
            return
        if self._panel_busy():
            return  # never over what the operator typed or is confirming
        self.index.show_suggestions(doc_id, reply.get("candidates"), reply.get("period"))

    def _suggestions_failed(self, err: BaseException) -> None:
        """Suggestions are a help: a service without them, or a failed reading, leaves the panel as it is."""
        if _unknown_operation(err):
            self.suggestions_offered = False

    # ------------------------------------------------------------------ ACR files: confirm, index by hand
    def _show_next_file(self) -> None:
        acr = self.to_confirm[0] if self.to_confirm else None
        self.index.prefill(acr, max(0, len(self.to_confirm) - 1))
        self._show_unfiled()

    def _files_unfiled(self) -> bool:
        """Whether Enter files the unfiled pages: there are some, and no file of its own is shown (a cover
        sheet's, or one whose suggestion was picked)."""
        return bool(self.unfiled) and self.batch != "" and not self.to_confirm and self.index.document_id is None

    def confirm(self) -> None:
        """Enter: confirm the prefilled ACR file, file the unfiled pages into the one typed, or index the one
        typed by hand (the next pages go into it)."""
        if not self.index.confirm_button.isEnabled():
            return  # an index already on its way (Enter pressed twice)
        code, period = self.index.code.text().strip(), self.index.period.text().strip()
        batch = self.batch or self.batch_name.text().strip()
        if not code or not period or not batch:
            show_error(self.message, RuntimeError(bi("बैच, कोड और अवधि चाहिए", "a batch, a code and a period "
                                                                              "are needed")))
            return
        args: dict[str, Any] = {"batch": batch, "employee_code": code, "period": period}
        self._indexing_batch = batch
        self._filing = []
        if self.index.document_id is not None:
            args["document_id"] = self.index.document_id
        elif self._files_unfiled():
            args["batch"] = self._indexing_batch = self.batch  # the pages shown are of this batch
            args["pages"] = self._filing = sorted(self.unfiled)
        reason = self.index.reason.text().strip()
        if self.index.needs_reason and reason:
            args[self.index.needs_reason] = reason
        self.index.confirm_button.setEnabled(False)
        self._call("index_document", args, self._indexed, self._index_failed)

    def _indexed(self, reply: Any) -> None:
        self.index.confirm_button.setEnabled(True)
        shown = self.index.document_id
        confirmed_cover = shown is not None and bool(self.to_confirm) and self.to_confirm[0].get("document_id") == shown
        doc = reply.get("document", reply) if isinstance(reply, dict) else {}
        doc_id = doc.get("id", doc.get("document_id")) if isinstance(doc, dict) else None
        if doc_id is not None:
            self._indexed_documents.add(int(doc_id))
        filed = [int(seq) for seq in reply.get("pages_filed") or []] if isinstance(reply, dict) else []
        if confirmed_cover:
            self.to_confirm.popleft()
        elif shown is not None:
            pass  # an ACR file already holding pages (its suggestions were confirmed): indexed in place
        elif filed:
            pass  # scanned first, indexed after: the pages went into it; the next ones are filed the same way
        elif doc_id is not None:
            self.next_document = int(doc_id)  # the next Scan / Continue puts pages into it
            self.next_document_batch = str(self._indexing_batch)
        for seq in filed:
            self.unfiled.discard(seq)
            if seq in self.pages and doc_id is not None:
                self.pages[seq]["document_id"] = int(doc_id)
        show_ok(self.message, bi("ACR फ़ाइल की पुष्टि हुई", "ACR file confirmed") +
                f": {self.index.code.text()} {self.index.period.text()}"
                + (" · " + bi(f"{len(filed)} पन्ने फ़ाइल हुए", f"{len(filed)} page(s) filed") if filed else ""))
        self._show_next_file()
        if self.to_confirm:
            self.index.confirm_button.setFocus()
        else:
            self.index.search.setFocus()

    def _index_failed(self, err: BaseException) -> None:
        self.index.confirm_button.setEnabled(True)
        show_error(self.message, err)
        # A page the service will not file (deleted or replaced in verification, filed from elsewhere: a
        # resumed batch's events do not say) leaves the count; Enter again files the others.
        text = str(getattr(err, "message", err))
        refused = _REFUSED_PAGE.search(text) if type(err).__name__ == "StateError" and self._filing else None
        if refused is not None and int(refused.group(1)) in self._filing:
            self.unfiled.discard(int(refused.group(1)))
            self._show_unfiled()
        # the roster check refused: the operator may file it with a reason for the supervisor
        kind = type(err).__name__
        if kind in ("NotInRoster", "DuplicateAcr"):
            self.index.needs_reason = "not_in_roster" if kind == "NotInRoster" else "duplicate_reason"
            self.index.reason.setFocus()

    def _search_soon(self, _text: str) -> None:
        self._search_timer.start()

    def _search(self) -> None:
        query = self.index.search.text().strip()
        if len(query) < 2:
            self.index.results.clear()
            self.index.results.hide()
            return
        self._call("roster_search", {"query": query, "limit": 8}, self.index.show_results, self._optional_failed)

    # ------------------------------------------------------------------ closing the batch
    def close_batch(self) -> None:
        batch = self.batch or self.batch_name.text().strip()
        if not batch:
            return
        if self.job is not None and self.job_state == "running":
            show_error(self.message, RuntimeError(bi("पहले स्कैन रोकें", "stop the scan first")))
            return
        if self.to_confirm:
            show_error(self.message, RuntimeError(bi("पहले सभी ACR फ़ाइलों की पुष्टि करें",
                                                     "confirm every ACR file first")))
            return
        self._call("close_batch", {"batch": batch}, self._closed, self._failed)

    def _detach(self) -> None:
        """Leave the current scan job (stopped in the service; its pages are kept)."""
        self._job_epoch += 1
        if self.job is not None:
            self._left_jobs.add(self.job)
            self._call("scan_stop", {"job": self.job}, lambda r: None, lambda e: None)
        self.timer.stop()
        self.job, self.job_state = None, ""
        self.prompt.hide()
        self._update_buttons()

    def _closed(self, _reply: Any) -> None:
        self._detach()
        self.unfiled.clear()  # the batch went to the supervisor (who may still file or move its pages)
        self._show_unfiled()
        show_ok(self.message, bi(f"बैच {self.batch_name.text()} बंद: सुपरवाइज़र के पास गया",
                                 f"batch {self.batch_name.text()} closed: it goes to the supervisor"))
        self.batch = ""
        self.batch_name.clear()
        self.refresh()

    # ------------------------------------------------------------------ small things
    def _update_buttons(self) -> None:
        running = self.job is not None and self.job_state == "running"
        self.scan_button.setEnabled(not running)
        self.scan_button.setText((bi("और स्कैन करें", "Scan more") if self.job_state == "idle" and self.job
                                  else bi("स्कैन करें", "Scan")) + "  [F5]")
        self.stop_button.setEnabled(self.job is not None)
        state = {"running": bi("स्कैन हो रहा है…", "scanning…"), "waiting": bi("स्कैनर की प्रतीक्षा", "waiting for "
                 "the scanner"), "idle": bi("तैयार", "ready")}.get(self.job_state, "") if self.job else ""
        self.state_label.setText(f"{self.batch} · {state}" if state else "")

    def _failed(self, err: BaseException) -> None:
        show_error(self.message, err)

    def _optional_failed(self, err: BaseException) -> None:
        if not _unknown_operation(err):  # an operation another part of the service does not offer yet
            show_error(self.message, err)

    def shown(self) -> None:
        """The tab was shown: lists refreshed, a running scan followed again."""
        self.refresh()
        if self.job is not None:
            self.timer.start()

    def hidden(self) -> None:
        self.timer.stop()

    def reset(self) -> None:
        """Someone signed out (or in): nothing of the last person's scan stays on the screen."""
        self._generation += 1
        self._job_epoch += 1
        self._left_jobs.clear()  # each was stopped when it was left; the set stays small over a shift
        self.timer.stop()
        self.job, self.job_state, self.batch, self.since = None, "", "", 0
        self.tiles.clear()
        self.pages.clear()
        self.tiles_view.clear()
        self.to_confirm.clear()
        self._thumb_queue.clear()
        self.next_document = None
        self.replace_seq = None
        self._polling = False
        self.thumbnails_offered = True
        self.suggestions_offered = True
        self._cover_documents.clear()
        self._indexed_documents.clear()
        self._suggestions_asked.clear()
        self.unfiled.clear()
        self._unfiled_asked.clear()
        self._replacing.clear()
        self.prompt.hide()
        self.index.prefill(None, 0)
        self._show_unfiled()
        self.batch_name.clear()
        self._rescans([])
        self.message.setText("")
        self._update_buttons()

    def keyPressEvent(self, event: Any) -> None:
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        action = self.keys.get((Qt.Key(event.key()), ctrl))
        if action is not None:
            action()
            return
        # Enter anywhere on the screen: Continue at a scanner prompt, else confirm the ACR file shown.
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self.prompt.isVisible():
                self.scan()
                return
            if self.to_confirm:
                self.confirm()
                return
        super().keyPressEvent(event)


__all__ = ["DevicePrompt", "IndexPanel", "OperatorScreen", "no_clipboard", "placeholder"]
