"""The decoder of untrusted files (``python -m drivers.decode_worker``): one file in, its pages out, then exit.

Started by drivers/decode_process.py, never forked from the station: it begins as a fresh interpreter, so
no key, page or passphrase of the station is ever in its memory.  Before it reads anything it turns core
dumps off, lowers its own limits (address space, CPU time; the renderers it runs inherit them) and asks
to be killed if its parent goes.  Then it says "ready", reads one request line on stdin
(``{"path", "resolution", "mode", "max_pixels", "render_dir"}``), decodes the file with
drivers.image_loading and streams the result on stdout in drivers/sane_protocol.py's frames:

    {"type": "page", "page", "mode", "width", "height", "dpi"} + the raw pixels (Image.tobytes)
    {"type": "problem", "source", "reason"}   one page could not be read; the next follows
    {"type": "failed", "source", "reason"}    the whole file could not be read (the last frame)
    {"type": "tool", "message"}               no PDF renderer is installed (the last frame)
    {"type": "done"}                          every page was sent

One page at a time: the pipe holds a few kilobytes, so this process waits in ``write`` until the parent
has taken the page before it decodes the next one, and neither side ever holds more than a page or two.
Whatever goes wrong beyond that (the memory limit hit where Python cannot catch it, a crash, a hang) the
parent sees as the end of the stream and explains from the exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import IO, Any

from drivers.process_guard import die_with_parent, is_dumpable, limit_resources, no_core_dumps
from drivers.sane_protocol import write_frame

MAX_REQUEST_BYTES = 1 << 16


def main(argv: list[str] | None = None) -> int:
    # First, before any input is read: no core dumps, the limits, and death with the parent.
    no_core_dumps()
    parser = argparse.ArgumentParser(prog="python -m drivers.decode_worker")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--memory", type=int, required=True, help="RLIMIT_AS in bytes")
    parser.add_argument("--cpu", type=int, required=True, help="RLIMIT_CPU in seconds")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    limit_resources(memory_bytes=args.memory, cpu_seconds=args.cpu)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the parent decides
    # The frames go out on a private copy of stdout; fd 1 points at stderr, so a library that prints
    # cannot corrupt them.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from drivers.image_loading import load_pages  # under the limits already

    write_frame(out, {"type": "ready", "pid": os.getpid(), "dumpable": is_dumpable()})
    line = sys.stdin.buffer.readline(MAX_REQUEST_BYTES)
    if not line.strip():
        return 0  # started ahead and not needed after all
    request = json.loads(line)
    _decode(out, request, load_pages)
    return 0


def _decode(out: IO[bytes], request: dict[str, Any], load_pages: Any) -> None:
    from drivers.base import ColorMode
    from drivers.errors import ExternalToolError, InputError
    from drivers.image_loading import memory_reason

    path = Path(request["path"])

    def problem(error: InputError) -> None:
        write_frame(out, {"type": "problem", "source": error.source, "reason": error.reason})

    try:
        pages = load_pages(path, int(request["resolution"]), Path(request["render_dir"]),
                           mode=ColorMode(request["mode"]), on_error=problem,
                           max_pixels=int(request["max_pixels"]))
        for page in pages:
            image = page.image
            header = {"type": "page", "page": page.page_number, "mode": image.mode, "width": image.width,
                      "height": image.height, "dpi": page.dpi}
            del page
            pixels = image.tobytes()
            del image
            write_frame(out, header, pixels)
            del pixels
    except InputError as exc:
        write_frame(out, {"type": "failed", "source": exc.source, "reason": exc.reason})
        return
    except ExternalToolError as exc:
        write_frame(out, {"type": "tool", "message": exc.message})
        return
    except MemoryError:
        write_frame(out, {"type": "failed", "source": str(path), "reason": memory_reason()})
        return
    write_frame(out, {"type": "done"})


if __name__ == "__main__":
    sys.exit(main())
