"""The guard's log lines with their priority in the journal.

Under systemd the service's stderr is a journal stream, and journald reads a leading ``<N>`` on a line
as its syslog priority (sd-daemon(3)); without it every line is stored at the stream's default level and
a CRITICAL line would not show in ``journalctl -p crit``.  When stderr is that stream ($JOURNAL_STREAM
names its device and inode), the guard's logger writes its own prefixed lines and does not pass them on
to the root logger's handler as well (one line per event in the journal).  Elsewhere (a terminal, tests)
it logs like every other module.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def stderr_is_journal() -> bool:
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class JournalPrefix(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{prio}>{record.name}: {super().format(record)}"


def journal_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if stderr_is_journal() and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalPrefix("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
