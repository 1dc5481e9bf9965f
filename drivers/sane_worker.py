"""The SANE worker process (``python -m drivers.sane_worker``): one request from the parent, answered in frames.

Started by drivers/sane_driver.py for every list, capabilities or scan call.  libsane and the vendor back
end live only in this process, so a back end that segfaults, leaks or hangs costs one child process, never
the station.  This module is the child's main loop: it reads the request, owns the order in which libsane
is initialised, runs the command, streams pages and results to the parent (drivers/sane_protocol.py has the
wire format) and listens for "next"/"cancel" between pages.  The device itself is drivers/sane_device.py;
the pure option helpers are drivers/sane_options.py; status codes are drivers/sane_status.py.

Imports stay light: before libsane the child loads only the standard library, PIL (through drivers.base)
and the ``drivers.sane_*`` modules, never ``scanstation`` (lint-imports' drivers-bottom contract); ``sane``
itself is imported once the request has been read.  The station's own process never imports this module.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import queue
import signal
import sys
import threading
import traceback
from typing import IO, Any

from drivers.base import Source
from drivers.process_guard import no_core_dumps
from drivers.sane_device import SaneDevice, SaneFailure, actual_dpi, configure, page_image, set_raw
from drivers.sane_options import SettingError, capabilities_from_options
from drivers.sane_protocol import write_frame
from drivers.sane_status import Status, status_table


class _Commands:
    """Reads "next"/"cancel" lines from the parent on a thread; EOF (parent gone) counts as cancel."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.replies: queue.Queue[str] = queue.Queue()
        self.cancelled = threading.Event()
        self.device: SaneDevice | None = None
        self._thread = threading.Thread(target=self._run, name="sane-commands", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            command = raw.decode("ascii", "replace").strip()
            if command == "cancel":
                self._cancel()
            self.replies.put(command)
        self._cancel()
        self.replies.put("cancel")

    def _cancel(self) -> None:
        self.cancelled.set()
        if self.device is not None:
            self.device.cancel()


class _Worker:
    def __init__(self, out: IO[bytes], commands_in: IO[bytes]) -> None:
        self.out = out
        self.commands_in = commands_in

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        write_frame(self.out, header, payload)

    def error(self, kind: str, message: str, *, stage: str = "", status: Status | None = None,
              pages: int = 0) -> None:
        self.send({"type": "error", "kind": kind, "message": message, "stage": stage,
                   "status": int(status) if status is not None else None, "pages": pages})

    def list_devices(self) -> None:
        import sane

        devices = sane.get_devices()
        self.send({"type": "devices", "devices": [list(d) for d in devices]})

    def capabilities(self, device_name: str) -> None:
        device = SaneDevice(device_name)
        try:
            self.send({"type": "capabilities", **capabilities_from_options(device.options())})
        finally:
            device.close()

    def scan(self, device_name: str, settings: dict[str, Any]) -> None:
        commands = _Commands(self.commands_in)
        device = SaneDevice(device_name)
        commands.device = device
        pages = 0
        try:
            source = Source(settings["source"])
            scheduled = configure(device, settings)
            multi = source in (Source.ADF, Source.DUPLEX)
            while True:
                for name, value in scheduled.get(pages + 1, []):
                    set_raw(device, name, value)
                if commands.cancelled.is_set():
                    self.send({"type": "cancelled", "pages": pages})
                    return
                dpi = actual_dpi(device)
                try:
                    device.start()
                    fmt, _last, (_ppl, expected_lines), depth, _bpl = device.parameters()
                    data, width, lines, samples, sample_size = device.snap()
                except SaneFailure as failure:
                    if commands.cancelled.is_set() or failure.status == Status.CANCELLED:
                        self.send({"type": "cancelled", "pages": pages})
                    elif failure.status == Status.NO_DOCS and multi and pages > 0:
                        self.send({"type": "done", "pages": pages})  # the feeder ran out: a normal end
                    else:
                        self.error("status", failure.message, stage=failure.stage, status=failure.status,
                                   pages=pages)
                    return
                if commands.cancelled.is_set():
                    # An asynchronous sane_cancel makes python-sane return the lines read so far as if the
                    # page had ended; that partial page must not be delivered.
                    self.send({"type": "cancelled", "pages": pages})
                    return
                if expected_lines > 0 and lines < expected_lines:
                    self.error("status", f"incomplete page: {lines} of {expected_lines} lines arrived",
                               stage="read", pages=pages)
                    return
                image = page_image(data, width, lines, samples, sample_size, depth)
                self.send({"type": "page", "index": pages, "mode": image.mode, "width": image.width,
                           "height": image.height, "dpi": dpi, "format": fmt}, image.tobytes())
                pages += 1
                if commands.replies.get() != "next":
                    self.send({"type": "cancelled", "pages": pages})
                    return
                if not multi:
                    self.send({"type": "done", "pages": pages})
                    return
        except SettingError as exc:
            self.error("setting", str(exc), stage="options", pages=pages)
        except SaneFailure as failure:
            self.error("status", failure.message, stage=failure.stage, status=failure.status, pages=pages)
        finally:
            commands.device = None
            # SANE requires sane_cancel to end a scan (snap() never cancels, see SaneDevice.snap); every
            # result frame has been sent by now, so if a back end hangs here the parent still has it.
            with contextlib.suppress(Exception):  # the device may be gone; closing is what matters
                device.cancel()
            device.close()


def main() -> int:
    no_core_dumps()  # pages pass through this process
    # Keep the protocol on a private copy of stdout and point fd 1 at stderr, so a back end that printf()s
    # cannot corrupt the frame stream.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    commands_in = sys.stdin.buffer
    # A hung back end is reported by the parent with our stacks (it sends SIGUSR1 before killing us).
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    worker = _Worker(out, commands_in)
    try:
        request = json.loads(commands_in.readline().decode("utf-8"))
        import sane

        sane.init()
        # Build the status table now, before any back-end thread exists: it dlopen()s libsane, and a
        # dlopen after a back end has cancelled its reader thread can block (see LD_BIND_NOW in the parent).
        status_table()
        command = request.get("command")
        if command == "list":
            worker.list_devices()
        elif command == "capabilities":
            worker.capabilities(request["device"])
        elif command == "scan":
            worker.scan(request["device"], request["settings"])
        else:
            worker.error("internal", f"unknown command {command!r}")
    except SaneFailure as failure:
        # Open failing with "Invalid argument" is how libsane says "no such device".
        kind = "not_found" if failure.stage == "open" and failure.status == Status.INVAL else "status"
        worker.error(kind, failure.message, stage=failure.stage, status=failure.status)
    except SettingError as exc:
        worker.error("setting", str(exc), stage="options")
    except BrokenPipeError:
        return 1  # the parent went away; nobody to tell
    except Exception as exc:
        traceback.print_exc()
        worker.error("internal", f"{type(exc).__name__}: {exc}")
    try:
        out.close()
    except BrokenPipeError:
        return 1
    # Skip sane_exit and interpreter teardown: some back ends hang or crash in them, and this process owns
    # nothing else that needs an orderly shutdown.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
