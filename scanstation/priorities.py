"""CPU priority of the station service, so that a person at the kiosk never waits for a machine that is busy.

A station has two cores.  What a person waits for comes first: the kiosk's screens are a separate process
at the default priority; the station service (capture, page analysis, sealing, uploads: work measured in
pages per minute, not milliseconds) runs :data:`SERVICE_NICENESS` steps lower, and its OCR workers
(:data:`scanstation.ocr.pool.WORKER_NICENESS`) that much lower again.  Lower priority only decides who
waits when the cores are full: with idle cores the service runs at full speed, so the station still keeps
up with its scanner (bench/pipeline.py), while a supervisor paging through a batch during a scan is not held
up by it (bench/ui.py's UI-thread heartbeat).

The whole process is lowered, never single threads of it: threads of one Python process share the GIL, and
a lowered thread that is descheduled while holding it would hold up its higher-priority siblings (a
priority inversion the kiosk measured: lowering only its page-decoding threads made page changes 2.8 s slow
under load).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

SERVICE_NICENESS = 5


def lower_this_process(by: int) -> None:
    """Make every thread of this process ``by`` steps nicer (threads made later inherit it).

    On Linux a niceness belongs to a thread (``setpriority(PRIO_PROCESS, tid)``), so each existing thread
    is lowered; raising it back would need a privilege the service does not have.
    """
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
        except OSError as e:  # a sandbox may forbid it (or the thread ended): the work runs at its priority
            log.info("could not lower thread %s's priority: %s", tid, e)
