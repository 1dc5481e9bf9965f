"""Progress against the roster (issue 14, scope 7): the supervisor's and unit head's dashboard.

Numbers come from the service's ``progress`` operation (:mod:`scanstation.reports.progress`): ACR files
expected (active roster × the unit's periods) against scanned, verified, signed and uploaded, per period,
per day and per operator, and the flags most often raised.  Charts are pyqtgraph (docs/supervisor.md
says why not QtCharts): a bar chart of the stages per period, and the last days' work.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg

from .qt import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    Qt,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from .service_link import ServiceLink
from .widgets import bi, button, message_line, show_error

STAGE_LABELS = {"expected": ("अपेक्षित", "expected"), "scanned": ("स्कैन", "scanned"),
                "verified": ("सत्यापित", "verified"), "signed": ("हस्ताक्षरित", "signed"),
                "uploaded": ("अपलोड", "uploaded")}
STAGE_COLOURS = {"expected": "#b0bec5", "scanned": "#64b5f6", "verified": "#81c784", "signed": "#ffb74d",
                 "uploaded": "#9575cd"}
FLAG_LABELS = {"blank": "खाली / blank", "orientation_uncertain": "दिशा अनिश्चित / orientation",
               "duplicate": "दोहराव / duplicate", "not_in_roster": "रोस्टर में नहीं / not in roster",
               "double_feed": "दो पन्ने / double feed", "low_resolution": "कम रिज़ॉल्यूशन / low resolution",
               "too_dark": "बहुत गहरा / too dark", "too_light": "बहुत हल्का / too light",
               "low_contrast": "कम कंट्रास्ट / low contrast", "blurred": "धुंधला / blurred",
               "content_cut_off": "सामग्री कटी / content cut off", "skew_uncorrectable": "अधिक तिरछा / skewed",
               "grainy": "दानेदार / grainy",
               "damaged": "क्षतिग्रस्त / damaged", "separator_unreadable": "विभाजक अपठनीय / separator unreadable"}


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "—"


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    return table


def _fill(table: QTableWidget, rows: list[list[Any]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = QTableWidgetItem(str(value))
            item.setToolTip(str(value))
            if isinstance(value, int):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(r, c, item)


class DashboardScreen(QWidget):
    def __init__(self, link: ServiceLink, days: int = 14) -> None:
        super().__init__()
        self.link = link
        self.days = days
        self.data: dict[str, Any] = {}
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.summary = QLabel("")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        bar.addWidget(self.summary, 1)
        self.refresh_button = button(bi("ताज़ा करें", "Refresh"))
        self.refresh_button.clicked.connect(self.refresh)
        bar.addWidget(self.refresh_button)
        layout.addLayout(bar)

        charts = QHBoxLayout()
        self.period_chart = pg.PlotWidget(title=bi("अवधि अनुसार ACR फ़ाइलें", "ACR files per period"))
        self.period_chart.setMouseEnabled(x=False, y=False)
        self.period_chart.addLegend(offset=(-10, 10))
        charts.addWidget(self.period_chart, 1)
        self.day_chart = pg.PlotWidget(title=bi("प्रतिदिन", f"per day (last {days} days)"))
        self.day_chart.setMouseEnabled(x=False, y=False)
        self.day_chart.addLegend(offset=(-10, 10))
        charts.addWidget(self.day_chart, 1)
        layout.addLayout(charts, 3)

        tables = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(QLabel(bi("<b>ऑपरेटर अनुसार</b>", "<b>Per operator</b>")))
        self.operators = _table([bi("ऑपरेटर", "operator"), bi("फ़ाइलें", "files"), bi("पृष्ठ", "pages"),
                                 bi("दोबारा स्कैन", "rescans"), bi("हटाए", "deleted")])
        left.addWidget(self.operators)
        tables.addLayout(left, 3)
        middle = QVBoxLayout()
        middle.addWidget(QLabel(bi("<b>सबसे अधिक चिह्न</b>", "<b>Flags most often raised</b>")))
        self.flags = _table([bi("चिह्न", "flag"), bi("संख्या", "count"), bi("किस पर", "on")])
        middle.addWidget(self.flags)
        tables.addLayout(middle, 2)
        right = QVBoxLayout()
        right.addWidget(QLabel(bi("<b>अभी स्कैन नहीं</b>", "<b>Not yet scanned</b>")))
        self.missing = _table([bi("कर्मचारी कोड", "employee code"), bi("अवधि", "period")])
        right.addWidget(self.missing)
        tables.addLayout(right, 2)
        layout.addLayout(tables, 2)
        self.message = message_line()
        layout.addWidget(self.message)
        self._loading = False

    def refresh(self) -> None:
        if self._loading:
            return
        self._loading = True
        self.link.submit("progress", {"days": self.days}, self._loaded, self._failed)

    def _failed(self, err: BaseException) -> None:
        self._loading = False
        show_error(self.message, err)

    def _loaded(self, data: Any) -> None:
        self._loading = False
        self.message.clear()
        self.show_progress(dict(data or {}))

    def show_progress(self, data: dict[str, Any]) -> None:
        self.data = data
        expected = int(data.get("expected") or 0)
        stages = data.get("stages") or {}
        periods = list(data.get("periods") or [])
        parts = [f"<b>{bi(*STAGE_LABELS['expected'])}: {expected}</b>"]
        for stage in ("scanned", "verified", "signed", "uploaded"):
            n = int(stages.get(stage, 0))
            parts.append(f"{bi(*STAGE_LABELS[stage])}: <b>{n}</b> ({percent(n, expected)})")
        text = " &nbsp;·&nbsp; ".join(parts)
        text += f"<br>{bi('योजना से बाहर', 'outside the plan')}: {int(data.get('outside_plan') or 0)}"
        if periods:
            text += f" &nbsp;·&nbsp; {bi('अवधियाँ', 'periods')}: {', '.join(periods)}"
        else:
            text += " &nbsp;·&nbsp; " + bi("कोई अवधि तय नहीं ([roster] periods)", "no periods configured "
                                           "([roster] periods in the station configuration)")
        self.summary.setText(text)
        self._period_chart(data)
        self._day_chart(data)
        _fill(self.operators, [[r["operator"], int(r["files"]), int(r["pages"]), int(r["rescans"]), int(r["deleted"])]
                               for r in data.get("by_operator") or []])
        _fill(self.flags, [[FLAG_LABELS.get(f["flag"], f["flag"]), int(f["count"]),
                            bi("पृष्ठ", "page") if f["kind"] == "page" else bi("फ़ाइल", "file")]
                           for f in data.get("top_flags") or []])
        _fill(self.missing, [[m["employee_code"], m["period"]] for m in data.get("missing") or []])

    def _period_chart(self, data: dict[str, Any]) -> None:
        chart = self.period_chart
        chart.clear()
        by_period = data.get("by_period") or {}
        labels = list(by_period)
        names = ["expected", "scanned", "verified", "signed", "uploaded"]
        width = 0.8 / len(names)
        for i, stage in enumerate(names):
            xs = [p + (i - (len(names) - 1) / 2) * width for p in range(len(labels))]
            heights = [int(by_period[label].get(stage, 0)) for label in labels]
            bars = pg.BarGraphItem(x=xs, height=heights, width=width, brush=STAGE_COLOURS[stage],
                                   name=bi(*STAGE_LABELS[stage]))
            chart.addItem(bars)
        chart.getAxis("bottom").setTicks([[(i, label) for i, label in enumerate(labels)]])
        chart.setXRange(-0.6, max(0.6, len(labels) - 0.4), padding=0)

    def _day_chart(self, data: dict[str, Any]) -> None:
        chart = self.day_chart
        chart.clear()
        days = data.get("by_day") or []
        xs = list(range(len(days)))
        series = [("pages_captured", "#64b5f6", bi("पृष्ठ स्कैन", "pages scanned")),
                  ("pages_verdicts", "#81c784", bi("पृष्ठ जाँचे", "pages checked")),
                  ("files_scanned", "#1565c0", bi("फ़ाइलें स्कैन", "files scanned")),
                  ("verified", "#2e7d32", bi("फ़ाइलें सत्यापित", "files verified")),
                  ("uploaded", "#5e35b1", bi("फ़ाइलें अपलोड", "files uploaded"))]
        for key, colour, name in series:
            ys = [int(d.get(key, 0)) for d in days]
            chart.plot(xs, ys, pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5, symbolBrush=colour, name=name)
        step = max(1, len(days) // 7)
        chart.getAxis("bottom").setTicks([[(i, str(d["day"])[5:]) for i, d in enumerate(days) if i % step == 0]])
