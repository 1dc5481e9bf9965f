"""How often a SANE back end's reader thread hangs a scan, with and without drivers/_deferred_cancel.c.

Run by hand (needs the dev install and gdb for the stacks):

    .venv/bin/python bench/sane_cancel_race.py [--pages 200000] [--parallel 3]

Back ends built on sanei_thread (SANE's ``test`` back end among them) end each page's reader thread with an
asynchronous pthread_cancel.  When it lands while the thread holds its malloc arena's lock (inside free()),
the thread blocks on that lock again while exiting and sane_read's join waits for ever.  In the station that
is a scan stuck until the page timeout (a CI run of tests/test_capture_jobs.py hit it).

Each side scans ``--pages`` small pages straight through python-sane with the ``test`` back end, in children
of ``--parallel`` at a time, each child scanning up to ``--per-child`` pages; a child that makes no progress
for 8 s is hung (its stacks are kept with gdb, then it is killed).  Both sides run with
MALLOC_TRIM_THRESHOLD_=0 and MALLOC_TOP_PAD_=0: every free() of the reader's buffer then trims the heap by
a system call while holding the lock, which widens the window from nanoseconds to microseconds, so the hang
shows in minutes instead of CI-months.  The only difference between the sides is LD_PRELOAD.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers import sane_driver
from tests.sane_env import sane_test_env

_CHILD = r"""
import os, sys, sane
sane.init()
dev = sane.open("test:0")
dev.mode = "Gray"; dev.resolution = 75; dev.source = "Flatbed"
dev.br_x = 100.0; dev.br_y = 100.0   # 295 x 295 pixels: two pipe-fulls, so the last read races the reader's exit
progress, pages = sys.argv[1], int(sys.argv[2])
for i in range(pages):
    dev.start()
    dev.dev.snap(1, 1, None)         # as the station's worker calls it: no cancel after the page
    if i % 200 == 199:
        with open(progress, "w") as f:
            f.write(str(i + 1))
with open(progress, "w") as f:
    f.write(str(pages))
os._exit(0)
"""


def run_side(name: str, env: dict[str, str], pages: int, per_child: int, parallel: int,
             out: Path) -> tuple[int, int, float]:
    """(pages scanned, hangs, seconds) for one side."""
    done = hangs = 0
    started = time.monotonic()
    launched = 0
    running: dict[subprocess.Popen[bytes], tuple[Path, str, float]] = {}
    while launched < pages or running:
        while launched < pages and len(running) < parallel:
            count = min(per_child, pages - launched)
            launched += count
            progress = out / f"{name}-{launched}.progress"
            progress.write_text("0")
            child = subprocess.Popen([sys.executable, "-c", _CHILD, str(progress), str(count)], env=env)
            running[child] = (progress, "0", time.monotonic())
        time.sleep(0.25)
        for child, (progress, last, since) in list(running.items()):
            now = progress.read_text() or last
            if child.poll() is not None:
                done += int(now)
                del running[child]
            elif now != last:
                running[child] = (progress, now, time.monotonic())
            elif time.monotonic() - since > 8:
                if shutil.which("gdb") and hangs < 3:
                    stacks = subprocess.run(["gdb", "-p", str(child.pid), "-batch", "-ex", "thread apply all bt"],
                                            capture_output=True, text=True).stdout
                    (out / f"{name}-hang-{child.pid}.txt").write_text(stacks)
                child.kill()
                child.wait()
                hangs += 1
                done += int(now)
                del running[child]
    return done, hangs, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=200_000, help="pages per side")
    parser.add_argument("--per-child", type=int, default=20_000)
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="where hung children's stacks go")
    args = parser.parse_args()
    preload = sane_driver._DEFERRED_CANCEL
    if preload is None:
        print("drivers/_deferred_cancel.c is not compiled: run installer/setup.sh --dev", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="sane-cancel-race-"))
    out.mkdir(parents=True, exist_ok=True)
    base = dict(os.environ)
    base.update(sane_test_env(out))
    base.update({"LD_BIND_NOW": "1", "MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_TOP_PAD_": "0"})
    base.pop("LD_PRELOAD", None)
    sides = {"without the preload": base, "with drivers/_deferred_cancel (as shipped)": {**base, "LD_PRELOAD": preload}}
    results = {}
    for index, (name, env) in enumerate(sides.items()):
        results[name] = run_side(f"side{index}", env, args.pages, args.per_child, args.parallel, out)
        pages, hangs, seconds = results[name]
        rate = f"1 in {pages // hangs:,} pages" if hangs else "none"
        print(f"  {name:44s} {pages:>9,} pages  {hangs:>3} hung scans ({rate})  {seconds:6.0f} s", flush=True)
    (_, before, _), (_, after, _) = results.values()
    verdict = "PASS" if after == 0 and before > 0 else ("INCONCLUSIVE" if before == 0 else "FAIL")
    print(f"  {verdict}  hung scans with the preload: {after}, without: {before}; stacks of hung children in {out}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
