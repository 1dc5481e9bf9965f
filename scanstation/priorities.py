"""CPU priorities of the station's background work, so that people never wait for a machine that is busy.

A station has two cores.  What a person waits for comes first: the kiosk's screens (a separate process at
the default priority) and a scanner's page being acknowledged.  Page analysis (cleaning, deskew, flags)
runs one step lower, OCR (:data:`scanstation.ocr.pool.WORKER_NICENESS`) lower still.  Lower priority only
decides who waits when the cores are full: with idle cores every worker runs at full speed, so the station
still keeps up with its scanner (bench/pipeline.py), while a supervisor paging through a batch during a scan
is no longer held up by it (bench/ui.py's UI-thread heartbeat).
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

ANALYSIS_NICENESS = 5
# The kiosk's decoding of pages ahead of the supervisor: background work for the screen it serves.
PREFETCH_NICENESS = 5

_lowered = threading.local()


def lower_this_thread(by: int) -> None:
    """Make the calling thread ``by`` steps nicer (Linux schedules threads one by one: PRIO_PROCESS with a
    thread id sets that thread's niceness alone).  Raising it back would need a privilege we do not have,
    so only threads that do background work for their whole life call this.  A second call on the same
    thread does nothing (pool threads call it with every task)."""
    if getattr(_lowered, "done", False):
        return
    _lowered.done = True
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except OSError as e:  # a sandbox may forbid it: the work still runs, only at the default priority
        log.info("could not lower thread %s's priority: %s", tid, e)
