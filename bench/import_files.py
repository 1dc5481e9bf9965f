"""What decoding imported files in a child process costs: the import driver against in-process loading.

    .venv/bin/python bench/import_files.py [--files 12]

Both read the same 300-dpi A4 grey PNGs; "in-process" is drivers.image_loading.load_pages (what the
import driver did before issue 13), "decoder processes" is drivers.import_driver.ImportDriver (one fresh,
limited decoder process per file, the next one started while the current file is read).  Each runs twice:
with a page callback that does nothing (the worst case: nothing to hide the decoder's start-up behind) and
with one that encodes the page as PNG, as the station does before encrypting it.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from drivers.base import CancelToken, ScanSettings
from drivers.image_loading import load_pages
from drivers.import_driver import ImportDriver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-", dir="/dev/shm"))
    try:
        files = []
        for i in range(args.files):
            path = tmp / f"p{i}.png"
            Image.new("L", (2480, 3508), 255 - i).save(path, dpi=(300, 300))
            files.append(path)

        def encode(page: Any) -> None:  # a LoadedPage or a CapturedPage
            page.image.save(io.BytesIO(), "PNG", compress_level=1)

        work: tuple[tuple[str, Callable[[Any], None]], ...] = (
            ("page callback does nothing", lambda page: None), ("page callback encodes PNG", encode))
        for label, on_page in work:
            start, cpu = time.perf_counter(), _cpu()
            for path in files:
                for page in load_pages(path, 300, tmp):
                    on_page(page)
            before, cpu_before = time.perf_counter() - start, _cpu() - cpu
            start, cpu = time.perf_counter(), _cpu()
            ImportDriver(files, tmp_dir=tmp).scan("import", ScanSettings(), CancelToken(), on_page)
            after, cpu_after = time.perf_counter() - start, _cpu() - cpu
            print(f"{label}: {args.files} A4 PNGs in-process {before:.2f} s ({cpu_before:.2f} s CPU), decoder "
                  f"processes {after:.2f} s ({cpu_after:.2f} s CPU, children included): "
                  f"+{(after - before) / args.files * 1000:.0f} ms a file")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu() -> float:
    times = os.times()  # children: counted once they have been waited for (the driver reaps each decoder)
    return times.user + times.system + times.children_user + times.children_system


if __name__ == "__main__":
    main()
