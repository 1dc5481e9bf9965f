"""Run core work off the UI thread and report success or failure back on the UI thread (Anki's pattern)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .qt import QObject, QRunnable, QThreadPool, Signal


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as e:  # delivered to the UI thread, shown in one place
            self._relay.failed.emit(e)
        else:
            self._relay.done.emit(result)


_live: set[_Relay] = set()


def run_in_background(fn: Callable[[], Any], on_done: Callable[[Any], None],
                      on_failed: Callable[[BaseException], None], *, keep: QObject | None = None) -> None:
    """``keep``: another object the job's callbacks need alive until it has reported (an event relay)."""
    relay = _Relay()
    relay.keep = keep  # type: ignore[attr-defined]
    _live.add(relay)  # keep the relay alive until it has reported

    def finish(cb: Callable[[Any], None]) -> Callable[[Any], None]:
        def call(value: Any) -> None:
            _live.discard(relay)
            cb(value)

        return call

    relay.done.connect(finish(on_done))
    relay.failed.connect(finish(on_failed))
    QThreadPool.globalInstance().start(_Job(fn, relay))
